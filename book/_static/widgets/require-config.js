// Loaded before require.js on the pages with widgets (nb_ipywidgets_js in _config.yml): RequireJS
// reads this object as its configuration. It maps the widget modules that embed-amd.js defines to
// this folder (the book's _static/widgets/), where `make book` put embed-amd.js and its Font
// Awesome fonts: each module looks for its fonts beside its own address, which would otherwise
// be under the page's folder.
var require = (function () {
  var here = document.currentScript.src.replace(/\/[^\/]*$/, "");
  return {paths: {"@jupyter-widgets/html-manager/dist": here, "@jupyter-widgets": here}};
})();
