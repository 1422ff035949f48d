// Audit Logs: details that open and close, and times in the viewer's own zone.
(function () {
  "use strict";

  // Details: a button per event (aria-expanded) shows or hides its detail row.
  // Without this script every detail stays open and the buttons stay hidden.
  document.querySelectorAll("[data-event-toggle]").forEach(function (button) {
    var detail = document.getElementById(button.getAttribute("aria-controls"));
    if (!detail) {
      return;
    }
    var show = function (open) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
      detail.hidden = !open;
    };
    show(false);
    button.hidden = false;
    button.addEventListener("click", function () {
      show(button.getAttribute("aria-expanded") !== "true");
    });
  });

  // Times: the server writes UTC; show them in the browser's zone, named, with
  // how long ago, and keep the exact UTC in the title (shown on hover).
  var zone = "UTC";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch (error) {
    zone = "UTC";
  }
  var locale = navigator.language || "en";

  function parts(date) {
    var found = {};
    new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23"
    }).formatToParts(date).forEach(function (part) {
      found[part.type] = part.value;
    });
    return found;
  }

  function zoneName(date) {
    var name = new Intl.DateTimeFormat(locale, { timeZone: zone, timeZoneName: "short" })
      .formatToParts(date)
      .filter(function (part) { return part.type === "timeZoneName"; })[0];
    return name ? name.value : zone;
  }

  // The date and the time each stay whole (the date has hyphens); the zone
  // may wrap.
  function showLocal(node, date) {
    var p = parts(date);
    node.textContent = "";
    [p.year + "-" + p.month + "-" + p.day, p.hour + ":" + p.minute + ":" + p.second]
      .forEach(function (text) {
        var piece = document.createElement("span");
        piece.className = "nowrap";
        piece.textContent = text;
        node.appendChild(piece);
        node.appendChild(document.createTextNode(" "));
      });
    node.appendChild(document.createTextNode(zoneName(date)));
  }

  function ago(date, now) {
    var seconds = Math.round((now - date) / 1000);
    if (seconds < 0) {
      return "in the future";
    }
    if (seconds < 45) {
      return "just now";
    }
    var minutes = Math.round(seconds / 60);
    if (minutes < 60) {
      return minutes + " min ago";
    }
    var hours = Math.round(minutes / 60);
    if (hours < 48) {
      return hours + " h ago";
    }
    return Math.round(hours / 24) + " days ago";
  }

  var times = document.querySelectorAll("time[data-local-time]");
  function render() {
    var now = Date.now();
    times.forEach(function (node) {
      var date = new Date(node.getAttribute("datetime"));
      if (isNaN(date.getTime())) {
        return;
      }
      showLocal(node, date);
      var relative = node.parentNode.querySelector("[data-relative-time]");
      if (relative) {
        relative.textContent = ago(date, now);
      }
    });
  }
  render();
  if (times.length) {
    window.setInterval(render, 30000);
  }

  // The zone is named where times are shown and where a custom range is typed,
  // and sent with the filter so that From and To are read in it.
  document.querySelectorAll("[data-zone-name]").forEach(function (node) {
    node.textContent = zone;
  });
  var field = document.querySelector("[data-viewer-zone]");
  if (field) {
    field.value = zone;
  }
})();
