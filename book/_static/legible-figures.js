// Keep every figure of a cell output at or above MIN_FIGURE_SCALE of its natural size (issue 22, item 7).
// Matplotlib draws its text at a fixed size in pixels of the PNG; a figure squeezed into a phone's width
// would shrink a 9 pt title to about 5 px. With a minimum width the figure keeps legible text and its cell
// output scrolls sideways instead (book/_static/legible.css). Where a figure already fits, nothing changes.
// tests/book/test_book_browser.py reads the same constant from this file.
(function () {
    var MIN_FIGURE_SCALE = 0.65;
    function keep(img) {
        if (img.naturalWidth) {
            img.style.minWidth = Math.round(img.naturalWidth * MIN_FIGURE_SCALE) + "px";
        }
    }
    function all() {
        document.querySelectorAll("div.cell_output img").forEach(function (img) {
            if (img.complete) { keep(img); } else { img.addEventListener("load", function () { keep(img); }); }
        });
    }
    if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", all); } else { all(); }
})();
