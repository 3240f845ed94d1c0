// Tell RequireJS where the ipywidgets embed manager's files are: beside embed-amd.js in
// _static/vendor/html-manager/ (put there by scripts/install_book_assets.sh). Each bundle inside
// embed-amd.js (@jupyter-widgets/base, controls, html-manager, ...) derives the URL of its icon fonts
// from its own module URL; without these paths a module URL resolves against the page, and a page in
// notebooks/ asks for notebooks/@jupyter-widgets/<font>, which does not exist. The modules are defined
// inside embed-amd.js, so RequireJS never fetches these paths: they only fix the URLs.
// Loaded after require.js and before embed-amd.js (nb_ipywidgets_js in _config.yml).
(function () {
  var managerDir = new URL("vendor/html-manager", document.currentScript.src).href;
  window.require.config({
    paths: {
      "@jupyter-widgets": managerDir, // base, base7, controls, controls7, html-manager -> managerDir/<name>.js
      "@jupyter-widgets/html-manager/dist": managerDir, // dist/libembed-amd -> managerDir/libembed-amd.js
    },
  });
})();
