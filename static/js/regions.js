// Wide content on narrow screens. A table (or a code block) wider than the
// screen scrolls sideways inside its own region instead of widening the page;
// while it does, the region can be focused (a keyboard scrolls it with the
// arrow keys), has a name, and a visible line says that there is more.
(function () {
  "use strict";

  var REGIONS = ".table-wrap, pre";

  // Tables outside a .table-wrap get one, so that only the table scrolls.
  document.querySelectorAll("table.table").forEach(function (table) {
    if (table.parentElement.classList.contains("table-wrap")) {
      return;
    }
    var wrap = document.createElement("div");
    wrap.className = "table-wrap";
    table.parentNode.insertBefore(wrap, table);
    wrap.appendChild(table);
  });

  function nameOf(region) {
    if (region.dataset.label) {
      return region.dataset.label;
    }
    var caption = region.querySelector("caption");
    if (caption && caption.textContent.trim()) {
      return caption.textContent.trim();
    }
    if (region.classList.contains("detail-json")) {
      return "Event detail (JSON)";
    }
    return region.tagName === "PRE" ? "Text" : "Table";
  }

  function cueOf(region) {
    var next = region.nextElementSibling;
    if (next && next.classList.contains("scroll-cue")) {
      return next;
    }
    var cue = document.createElement("p");
    cue.className = "scroll-cue";
    cue.setAttribute("aria-hidden", "true");
    cue.textContent = "Scroll sideways for more \u2192";
    region.parentNode.insertBefore(cue, region.nextSibling);
    return cue;
  }

  function update(region) {
    var scrolls = region.scrollWidth > region.clientWidth + 1;
    var marked = region.hasAttribute("data-scroll-region");
    if (scrolls && !marked) {
      region.setAttribute("data-scroll-region", "");
      region.tabIndex = 0;
      region.setAttribute("role", "region");
      region.setAttribute("aria-label", nameOf(region) + " (scrolls sideways)");
      cueOf(region).hidden = false;
    } else if (!scrolls && marked) {
      region.removeAttribute("data-scroll-region");
      region.removeAttribute("tabindex");
      region.removeAttribute("role");
      region.removeAttribute("aria-label");
      cueOf(region).hidden = true;
    }
  }

  var regions = document.querySelectorAll(REGIONS);
  if ("ResizeObserver" in window) {
    // Also fires when a closed <details> opens and its content gets a size.
    var observer = new ResizeObserver(function (entries) {
      entries.forEach(function (entry) {
        update(entry.target);
      });
    });
    regions.forEach(function (region) {
      observer.observe(region);
    });
  }
  regions.forEach(update);
})();
