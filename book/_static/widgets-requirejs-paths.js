// Tell RequireJS where the ipywidgets embed manager's own files are: beside embed-amd.js in
// _static/vendor/html-manager/ (put there by scripts/install_book_assets.sh). The manager derives the
// URL of its icon fonts from its module URL; without this it resolves against the page, and a page in
// notebooks/ asks for notebooks/@jupyter-widgets/html-manager/dist/<font>, which does not exist.
// Loaded after require.js and before embed-amd.js (nb_ipywidgets_js in _config.yml).
(function () {
  var managerDir = new URL("vendor/html-manager", document.currentScript.src).href;
  window.require.config({ paths: { "@jupyter-widgets/html-manager/dist": managerDir } });
})();
