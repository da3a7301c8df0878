// joobq-sql dashboard: buttons call the REST API, and the page refreshes its own content.
// No build step, no framework: the server renders (and escapes) every page.
(function () {
  "use strict";
  const body = document.body;
  const base = body.dataset.base || "";
  const every = Math.max(1, Number(body.dataset.refresh || 5)) * 1000;
  const toggle = document.getElementById("auto-refresh");
  let busy = false;

  if (toggle) {
    toggle.checked = localStorage.getItem("joobq-auto-refresh") !== "off";
    toggle.addEventListener("change", function () {
      localStorage.setItem("joobq-auto-refresh", toggle.checked ? "on" : "off");
    });
  }

  function flash(text, failed) {
    const box = document.getElementById("flash");
    box.textContent = text; // textContent: messages are shown as text, never as HTML
    box.className = failed ? "failed" : "ok";
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin" });
      // A 503 is the page that says the database is unreachable: shown, and replaced by the
      // real page again on the first refresh after the database is back.
      if (!response.ok && response.status !== 503) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("content");
      if (fresh) document.getElementById("content").replaceChildren(...fresh.childNodes);
    } catch (error) {
      // The server is away for a moment: the next refresh tries again.
    } finally {
      busy = false;
    }
  }

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const question = button.dataset.confirm;
    if (question && !window.confirm(question)) return;
    button.disabled = true;
    try {
      const response = await fetch(base + button.dataset.action, {
        method: button.dataset.method || "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const answer = await response.json().catch(function () { return {}; });
      if (response.ok) {
        flash(button.textContent.trim() + ": done", false);
        if (button.dataset.method === "DELETE" && /\/joobq\/jobs\/[^/]+$/.test(button.dataset.action)
            && /\/jobs\/[^/]+$/.test(location.pathname)) {
          location.href = base + "/jobs";
          return;
        }
      } else {
        flash(button.textContent.trim() + " failed: " + (answer.error || response.statusText), true);
      }
    } catch (error) {
      flash("request failed: " + error, true);
    } finally {
      button.disabled = false;
    }
    await refresh();
  });

  setInterval(function () {
    if (document.hidden || (toggle && !toggle.checked)) return;
    refresh();
  }, every);
})();
