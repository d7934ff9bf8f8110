/* The upload page: drop PDFs (or pick them, several times over) into one list, see what will
 * be sent, and watch the bytes go up. Without this script the plain multi-file input works.
 *
 * The server judges each file (PDF header, size, already present); the hints here only warn
 * early. After the upload the browser follows the server's redirect to the outcome page.
 */
(function () {
  "use strict";

  const form = document.getElementById("fca-upload-form");
  if (!form || !window.DataTransfer || !window.XMLHttpRequest || !window.FormData) {
    return;
  }
  const input = form.querySelector('input[type="file"]');
  const zone = document.getElementById("fca-dropzone");
  const list = document.getElementById("fca-selected");
  const submit = document.getElementById("fca-upload-submit");
  const bar = document.getElementById("fca-upload-progress");
  const status = document.getElementById("fca-upload-status");
  const maxBytes = parseInt(form.dataset.maxBytes || "0", 10);
  const maxFiles = parseInt(form.dataset.maxFiles || "0", 10);
  let chosen = [];

  document.documentElement.classList.add("fca-js");

  function sizeLabel(bytes) {
    if (bytes < 1024) {
      return bytes + " B";
    }
    const units = ["KB", "MB", "GB"];
    let size = bytes / 1024;
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return size.toFixed(1) + " " + units[unit];
  }

  function warning(file) {
    if (file.size === 0) {
      return "empty: will be rejected";
    }
    if (maxBytes && file.size > maxBytes) {
      return "over the size limit: will be rejected";
    }
    if (!/\.pdf$/i.test(file.name)) {
      return "not named .pdf: accepted only if its bytes are a PDF";
    }
    return "";
  }

  function sameFile(a, b) {
    return a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
  }

  function render() {
    const transfer = new DataTransfer();
    chosen.forEach(function (file) { transfer.items.add(file); });
    input.files = transfer.files;
    list.replaceChildren();
    chosen.forEach(function (file, index) {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.className = "fca-file-name";
      name.textContent = file.name;
      const size = document.createElement("span");
      size.className = "fca-size";
      size.textContent = sizeLabel(file.size);
      item.append(name, size);
      const note = warning(file);
      if (note) {
        const warn = document.createElement("span");
        warn.className = "fca-warn";
        warn.textContent = note;
        item.append(warn);
      }
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "button fca-remove";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", "Remove " + file.name);
      remove.addEventListener("click", function () {
        chosen.splice(index, 1);
        render();
      });
      item.append(remove);
      list.append(item);
    });
    const total = chosen.reduce(function (sum, file) { return sum + file.size; }, 0);
    const tooMany = maxFiles && chosen.length > maxFiles;
    submit.disabled = chosen.length === 0 || tooMany;
    status.textContent = chosen.length
      ? chosen.length + " file" + (chosen.length === 1 ? "" : "s") + ", " + sizeLabel(total)
      : "";
    if (tooMany) {
      status.textContent += ": at most " + maxFiles + " files per upload, remove some";
    }
  }

  function add(files) {
    Array.from(files).forEach(function (file) {
      if (!chosen.some(function (other) { return sameFile(other, file); })) {
        chosen.push(file);
      }
    });
    render();
  }

  input.addEventListener("change", function () {
    // Picking files again adds to the list instead of replacing it.
    const picked = Array.from(input.files);
    add(picked);
  });

  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("fca-dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function () { zone.classList.remove("fca-dragging"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    add(event.dataTransfer.files);
  });
  // A file dropped beside the zone must not make the browser leave the page to open it.
  ["dragover", "drop"].forEach(function (type) {
    window.addEventListener(type, function (event) { event.preventDefault(); });
  });
  zone.addEventListener("keydown", function (event) {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });

  form.addEventListener("submit", function (event) {
    if (!chosen.length) {
      event.preventDefault();
      return;
    }
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", form.action || window.location.pathname);
    request.upload.addEventListener("progress", function (progress) {
      if (progress.lengthComputable) {
        bar.max = progress.total;
        bar.value = progress.loaded;
        status.textContent = "Uploading… " + Math.round(100 * progress.loaded / progress.total) + "%";
      }
    });
    request.addEventListener("load", function () {
      if (request.status === 200 && request.responseURL.indexOf("batch=") !== -1) {
        status.textContent = "Uploaded. Opening the outcome…";
        window.location.assign(request.responseURL);
        return;
      }
      if (request.status === 200) {
        // The form came back with its errors: show the server's page as it is.
        document.open();
        document.write(request.responseText);
        document.close();
        return;
      }
      submit.disabled = false;
      bar.hidden = true;
      status.textContent = "The upload failed (HTTP " + request.status + "); nothing was stored.";
    });
    request.addEventListener("error", function () {
      submit.disabled = false;
      bar.hidden = true;
      status.textContent = "The upload failed: the server could not be reached.";
    });
    submit.disabled = true;
    bar.hidden = false;
    bar.removeAttribute("value");
    status.textContent = "Uploading…";
    request.send(new FormData(form));
  });

  render();
})();
