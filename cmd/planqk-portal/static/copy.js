// Copy-to-clipboard for the one-time secret. The page works without this
// script: the secret is in a read-only field that can be selected and
// copied by hand; with it, the Copy button appears.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy-target"));
    var status = document.getElementById(button.getAttribute("data-copy-status"));
    if (!field) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      var done = function (message) {
        if (status) {
          status.textContent = message;
        }
      };
      var fallback = function () {
        field.focus();
        field.select();
        done(document.execCommand("copy") ? "Copied to the clipboard." : "Select the token and copy it.");
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () {
          done("Copied to the clipboard.");
        }, fallback);
      } else {
        fallback();
      }
    });
  });
});
