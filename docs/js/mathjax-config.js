// MathJax 3 configuration for pymdownx.arithmatex (generic mode): typeset only the elements
// arithmatex marks, as SVG (no web fonts). MathJax itself is served from this site
// (assets/mathjax/, copied at build time from the django-static-mathjax package): no CDN.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
    enableMenu: false,
  },
  svg: { fontCache: "global" },
};
