#!/usr/bin/env bash
# Vendor the three scripts the rendered book would otherwise load from CDNs, so it works offline:
#   MathJax 3 (tex-mml-chtml.js, its fonts and lazily loaded extensions),
#   RequireJS (require.js) and the ipywidgets embed script (embed-amd.js + its icon fonts).
# They go to book/_static/vendor/ (git-ignored); _config.yml points Sphinx and myst-nb at them.
#
# `npm pack` fetches each package's tarball alone (the files we copy are prebuilt bundles, so the
# packages' own dependencies are not needed). Idempotent: a stamp file records the versions, and
# nothing is fetched when it matches and every copied file is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

MATHJAX=mathjax@3.2.2
REQUIREJS=requirejs@2.3.8
HTML_MANAGER=@jupyter-widgets/html-manager@1.0.15
DEST=book/_static/vendor
STAMP="$DEST/VERSIONS"
WANT="$MATHJAX $REQUIREJS $HTML_MANAGER"
REQUIRED=(mathjax/tex-mml-chtml.js mathjax/output/chtml/fonts/woff-v2 mathjax/input/tex/extensions
          requirejs/require.js html-manager/embed-amd.js)

complete() {
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] || return 1
    for f in "${REQUIRED[@]}"; do [ -e "$DEST/$f" ] || return 1; done
}

if complete; then
    echo "book assets: up to date in $DEST"
    exit 0
fi
command -v npm >/dev/null || { echo "install_book_assets.sh: npm not found (Debian: apt-get install -y npm)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "$MATHJAX" "$REQUIREJS" "$HTML_MANAGER" >/dev/null)
for tgz in "$WORK"/*.tgz; do
    mkdir -p "$WORK/$(basename "$tgz" .tgz)"
    tar -xzf "$tgz" -C "$WORK/$(basename "$tgz" .tgz)"
done
MJ="$WORK/mathjax-3.2.2/package/es5"
RJ="$WORK/requirejs-2.3.8/package"
HM="$WORK/jupyter-widgets-html-manager-1.0.15/package/dist"

rm -rf "$DEST"
mkdir -p "$DEST/mathjax/output/chtml/fonts" "$DEST/mathjax/input/tex" "$DEST/requirejs" "$DEST/html-manager"
# MathJax: the combined component, its CHTML fonts, the TeX extensions it autoloads, and the menu's
# lazily loaded accessibility parts (a11y, sre, ui).
cp "$MJ/tex-mml-chtml.js" "$DEST/mathjax/"
cp -r "$MJ/output/chtml/fonts/woff-v2" "$DEST/mathjax/output/chtml/fonts/"
cp -r "$MJ/input/tex/extensions" "$DEST/mathjax/input/tex/"
cp -r "$MJ/a11y" "$MJ/sre" "$MJ/ui" "$DEST/mathjax/"
cp "$WORK/mathjax-3.2.2/package/LICENSE" "$DEST/mathjax/LICENSE"
cp "$RJ/require.js" "$DEST/requirejs/"
# The widget embed script and the icon fonts its CSS references (hashed names, next to the script).
cp "$HM/embed-amd.js" "$HM/embed.js.LICENSE.txt" "$DEST/html-manager/"
find "$HM" -maxdepth 1 \( -name '*.woff2' -o -name '*.woff' -o -name '*.ttf' -o -name '*.eot' -o -name '*.svg' \) \
    -exec cp {} "$DEST/html-manager/" \;
echo "$WANT" > "$STAMP"
complete || { echo "install_book_assets.sh: copied files are incomplete in $DEST" >&2; exit 1; }
echo "book assets: $WANT -> $DEST ($(du -sh "$DEST" | cut -f1))"
