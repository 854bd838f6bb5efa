// jobd console: the only script. Pages read without it; it adds two things:
// - pages with <body data-live="ms"> refresh their #live part in place (no reload);
// - forms with data-confirm ask before they post.
"use strict";

function refreshLive(every) {
  const live = document.getElementById("live");
  if (!live) return;
  const tick = async () => {
    const active = document.activeElement;
    const typing = active && live.contains(active) && active.tagName === "INPUT";
    if (!typing && !document.hidden) {
      try {
        const response = await fetch(window.location.href, {
          headers: { "Accept": "text/html" }, credentials: "same-origin", cache: "no-store",
        });
        if (response.ok) {
          const page = new DOMParser().parseFromString(await response.text(), "text/html");
          const fresh = page.getElementById("live");
          if (fresh) {
            live.innerHTML = fresh.innerHTML;
            const stamp = document.getElementById("refreshed");
            if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
          }
          document.body.classList.remove("offline");
        } else {
          document.body.classList.add("offline");
        }
      } catch (e) {
        document.body.classList.add("offline");
      }
    }
    window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});

document.addEventListener("DOMContentLoaded", () => {
  const every = parseInt(document.body.getAttribute("data-live") || "0", 10);
  if (every > 0) refreshLive(every);
});
