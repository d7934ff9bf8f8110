/* Live document status for the admin's pages, without a framework and without reloading.
 *
 * Elements marked data-fca-doc (rendered by documents.presenters.live_status) whose
 * data-fca-status is "queued" or "processing" are polled through the progress endpoint named in
 * this script tag's data-progress-url; an element whose data-fca-version changed is replaced by
 * the server's fresh rendering. When a document changes status, the page's other live parts
 * (data-fca-refresh: counts, task runs, chunks) are fetched again from the page's own URL and
 * swapped in. A container with data-fca-poll-page="N" also refreshes them every N seconds, so
 * the dashboard notices new uploads. Polling pauses while the tab is hidden.
 */
(function () {
  "use strict";

  const script = document.currentScript;
  const progressUrl = script && script.dataset.progressUrl;
  if (!progressUrl) {
    return;
  }
  const ACTIVE = new Set(["queued", "processing"]);
  const FAST_MS = 1500;
  const SLOWEST_MS = 30000;
  let delay = FAST_MS;
  let timer = null;
  let stopped = false;
  let notice = null;

  function say(text) {
    if (!notice) {
      notice = document.createElement("div");
      notice.className = "fca-live-notice";
      notice.setAttribute("role", "status");
      document.body.appendChild(notice);
    }
    notice.textContent = text;
    notice.hidden = !text;
  }

  function activeIds() {
    const ids = new Set();
    document.querySelectorAll("[data-fca-doc]").forEach(function (element) {
      if (ACTIVE.has(element.dataset.fcaStatus)) {
        ids.add(element.dataset.fcaDoc);
      }
    });
    return Array.from(ids);
  }

  function schedule() {
    if (timer === null && !stopped && !document.hidden && activeIds().length) {
      timer = window.setTimeout(poll, delay);
    }
  }

  function fromHtml(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function apply(payload) {
    let changedStatus = false;
    payload.documents.forEach(function (doc) {
      document.querySelectorAll('[data-fca-doc="' + doc.id + '"]').forEach(function (element) {
        const variant = element.dataset.fcaVariant || "cell";
        const fresh = fromHtml(doc.html[variant] || doc.html.cell);
        if (!fresh || fresh.dataset.fcaVersion === element.dataset.fcaVersion) {
          return;
        }
        if (fresh.dataset.fcaStatus !== element.dataset.fcaStatus) {
          changedStatus = true;
        }
        element.replaceWith(fresh);
      });
    });
    return changedStatus;
  }

  async function refreshParts() {
    const parts = document.querySelectorAll("[data-fca-refresh]");
    if (!parts.length) {
      return;
    }
    const response = await fetch(window.location.href, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-Requested-With": "fca-live" },
    });
    if (!response.ok || response.redirected) {
      return;
    }
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    parts.forEach(function (part) {
      const key = part.dataset.fcaRefresh;
      const fresh = page.querySelector('[data-fca-refresh="' + CSS.escape(key) + '"]');
      if (fresh && fresh.innerHTML !== part.innerHTML) {
        part.innerHTML = fresh.innerHTML;
      }
    });
  }

  async function poll() {
    timer = null;
    const ids = activeIds();
    if (!ids.length || stopped) {
      return;
    }
    try {
      const response = await fetch(progressUrl + "?ids=" + ids.join(","), {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      const type = response.headers.get("Content-Type") || "";
      if (response.redirected || !type.includes("application/json")) {
        // The admin sent its login page: the session ended. Polling again cannot help.
        stopped = true;
        say("Live updates stopped: your session has ended. Reload the page to log in again.");
        return;
      }
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      const changedStatus = apply(await response.json());
      delay = FAST_MS;
      say("");
      if (changedStatus) {
        await refreshParts();
      }
    } catch (error) {
      delay = Math.min(delay * 2, SLOWEST_MS);
      say("Live updates paused (" + error.message + "); trying again in " +
          Math.round(delay / 1000) + " s.");
    }
    schedule();
  }

  function pollPagePeriodically() {
    const container = document.querySelector("[data-fca-poll-page]");
    const seconds = container ? parseInt(container.dataset.fcaPollPage, 10) : 0;
    if (!seconds) {
      return;
    }
    window.setInterval(function () {
      if (!document.hidden && !stopped) {
        refreshParts().then(schedule, function () { /* next interval tries again */ });
      }
    }, seconds * 1000);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      delay = FAST_MS;
      schedule();
    }
  });

  function start() {
    schedule();
    pollPagePeriodically();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }

  // For other scripts that add live elements to the page.
  window.fcaLive = { schedule: schedule, refresh: refreshParts };
})();
