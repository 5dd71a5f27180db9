// sunset console: progressive enhancement only. Pages work without this script.
"use strict";

// Timestamps are rendered in UTC; show them in the viewer's time zone, UTC on hover.
function localiseTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  // A calendar's cell already says the day: `data-part="time"` shows the time only.
  const timeOnly = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  for (const el of root.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(when.getTime())) continue;
    el.title = el.textContent;
    el.textContent = (el.dataset.part === "time" ? timeOnly : format).format(when);
  }
}

document.addEventListener("DOMContentLoaded", () => localiseTimes(document));
