// Console behaviour without inline script: confirmations and SMTP form hints.
(function () {
  "use strict";

  // <button data-confirm="..."> asks before submitting its form.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // Focus the error summary after a failed save, so it is read out first.
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }

  // TLS hint: what the TLS switch and the port mean together.
  var form = document.querySelector("[data-smtp-form]");
  if (!form) {
    return;
  }
  var tls = form.querySelector("#id_use_tls");
  var port = form.querySelector("#id_port");
  var mode = form.querySelector("#id_tls_mode");
  var hint = document.getElementById("tls-hint");
  var portHint = document.getElementById("id_port_hint");

  function describe() {
    var number = parseInt(port.value, 10);
    var explicit = mode ? mode.value : "";
    var text;
    if (!tls.checked) {
      text = "TLS off: the connection is not encrypted and authentication is not possible. Plain SMTP usually uses port 25.";
      if (number === 465) {
        text += " Port 465 expects implicit TLS: turn TLS on, or use port 25.";
      }
    } else if (explicit === "ssl" || (explicit === "" && number === 465)) {
      text = "Implicit TLS (SMTPS): the connection is encrypted from the first byte, usually on port 465.";
    } else {
      text = "STARTTLS on port " + (isNaN(number) ? "?" : number) +
        ": the server must offer STARTTLS, or sending fails (never falls back to plain text). Usually port 587.";
    }
    hint.textContent = text;
    if (portHint) {
      portHint.textContent = tls.checked
        ? "587 for STARTTLS, 465 for implicit TLS."
        : "25 for plain SMTP (no TLS).";
    }
  }

  tls.addEventListener("change", function () {
    if (!tls.checked && mode) {
      mode.value = "";
    }
    describe();
  });
  port.addEventListener("input", describe);
  if (mode) {
    mode.addEventListener("change", describe);
  }
  describe();
})();
