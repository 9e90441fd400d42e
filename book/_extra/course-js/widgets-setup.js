/*
 * Offline set-up for the Jupyter widgets embedded in the static book.
 *
 * Loaded on every page with widgets, after vendor/requirejs/require.js and before
 * vendor/html-manager/embed-amd.js (see nb_ipywidgets_js in _config.yml). It fixes two things:
 *
 * 1. Font files. The widget manager (@jupyter-widgets/html-manager 1.0.15) loads its icon fonts from the
 *    folder of its AMD module URL. We point the "@jupyter-widgets" module names at vendor/html-manager/,
 *    where ./dev copied embed-amd.js together with its fonts.
 *
 * 2. Math in widget descriptions. ipywidgets 8 typesets a description through the MathJax 2 API
 *    (MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])), which MathJax 3 does not have: without a
 *    shim every widget with a description fails to render (ipywidgets issue 3849). We provide a
 *    MathJax.Hub.Queue that forwards to MathJax 3's typesetPromise, and keep it attached when MathJax 3
 *    replaces window.MathJax while it loads.
 */
(function () {
  "use strict";

  // ---- 1. where the widget manager and its fonts live -------------------------------------------
  var script = document.currentScript;
  var here = script ? script.src : "";
  var root = here.slice(0, here.lastIndexOf("/course-js/") + 1);  // the book's root URL, ends in "/"
  if (window.require && window.require.config && root) {
    window.require.config({
      paths: {
        "@jupyter-widgets/html-manager/dist": root + "vendor/html-manager",
        "@jupyter-widgets": root + "vendor/html-manager"
      }
    });
  }

  // ---- 2. MathJax 2 "Hub" on top of MathJax 3 ------------------------------------------------------
  var MAX_WAIT_MS = 30000;
  var POLL_MS = 50;

  function typesetWhenReady(elements, waited) {
    var mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise && typeof mj.typesetPromise === "function") {
      mj.startup.promise
        .then(function () { return mj.typesetPromise(elements); })
        .catch(function (err) { console.warn("widgets-setup: MathJax typeset failed", err); });
    } else if (waited < MAX_WAIT_MS) {
      setTimeout(function () { typesetWhenReady(elements, waited + POLL_MS); }, POLL_MS);
    }
  }

  var hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var item = arguments[i];
        if (Array.isArray(item) && item[0] === "Typeset") {
          var element = item[2];
          typesetWhenReady(element ? [element] : undefined, 0);
        } else if (typeof item === "function") {
          item();
        }
      }
    }
  };

  function withHub(obj) {
    if (obj && typeof obj === "object" && !obj.Hub) {
      // Not enumerable, so MathJax 3 does not take it for a configuration block.
      Object.defineProperty(obj, "Hub", { value: hub, configurable: true, writable: true, enumerable: false });
    }
    return obj;
  }

  var current = withHub(window.MathJax);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    enumerable: true,
    get: function () { return current; },
    set: function (value) { current = withHub(value); }
  });
})();
