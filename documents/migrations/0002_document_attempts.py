"""Count how many times the latest ingestion of a document started."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="attempts",
            field=models.IntegerField(
                default=0,
                help_text="Times the latest ingestion started; reset when it is queued again.",
                verbose_name="attempts",
            ),
        ),
    ]
