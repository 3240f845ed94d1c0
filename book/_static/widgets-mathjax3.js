// The ipywidgets embed manager (html-manager 1.x) typesets widget labels with MathJax 2's
// `MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])` whenever `window.MathJax` exists; the book
// loads MathJax 3, which has no `Hub`, so every widget page threw "reading 'Queue'". This gives
// MathJax 3 a `Hub.Queue` that typesets the element with `typesetPromise`, both before MathJax has
// started (elements wait for `startup.ready`) and after. Loaded after Sphinx's inline MathJax config
// and before the deferred MathJax script and embed-amd.js (nb_ipywidgets_js in _config.yml).
(function () {
  var pending = [];
  var hub = {
    Queue: function (command) {
      var element = command && command[2];
      var mathjax = window.MathJax;
      if (mathjax && typeof mathjax.typesetPromise === "function") {
        mathjax.typesetPromise(element ? [element] : undefined);
      } else if (element) {
        pending.push(element);
      }
    },
  };
  var config = window.MathJax || {};
  config.Hub = hub;
  if (typeof config.typesetPromise === "function") return; // MathJax 3 is already running
  config.startup = config.startup || {};
  var ready = config.startup.ready;
  config.startup.ready = function () {
    if (ready) ready();
    else window.MathJax.startup.defaultReady();
    window.MathJax.Hub = hub;
    if (pending.length) window.MathJax.typesetPromise(pending.splice(0));
  };
  window.MathJax = config;
})();
