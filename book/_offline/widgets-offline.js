// Glue between the vendored widget manager (@jupyter-widgets/html-manager
// 1.0.6, widgets/embed-amd.js) and this site. book/_config.yml loads it on
// pages with widgets, after require.js and before widgets/embed-amd.js.
// Written for this book (not fetched; not in SHA256SUMS).
(function () {
  // 1. embed-amd.js loads its font-awesome fonts relative to the URL that
  //    require.js gives its module "@jupyter-widgets/html-manager/dist/...",
  //    by default the page's own folder, where they are not. Map that module
  //    path to _static/widgets/, where book/fetch_assets.sh put them.
  var here = document.currentScript.src.replace(/[^\/]*$/, "");
  require.config({
    paths: {"@jupyter-widgets/html-manager/dist": here + "widgets"}
  });
  // 2. ipywidgets typesets widget labels with the MathJax 2 API
  //    (MathJax.Hub.Queue); this site runs MathJax 3, which replaces the
  //    global MathJax object when tex-svg.js (deferred) runs. Bridge that
  //    one call once MathJax 3 is there, before the widgets render.
  function bridge() {
    var mj = window.MathJax;
    if (!mj || mj.Hub || !mj.startup) {
      return;  // no MathJax 3 on this page, or already bridged
    }
    mj.Hub = {
      Queue: function (job) {
        var el = job && job[2];
        if (!el) {
          return;
        }
        mj.startup.promise.then(function () {
          return mj.typesetPromise([el]);
        }).catch(function (e) {
          console.warn("MathJax could not typeset a widget label", e);
        });
      }
    };
  }
  document.addEventListener("DOMContentLoaded", bridge);
  window.addEventListener("load", bridge);
})();
