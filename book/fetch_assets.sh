#!/usr/bin/env bash
# Vendor the JavaScript the book site needs to work offline into book/_offline/.
#
#   book/fetch_assets.sh           verify book/_offline against SHA256SUMS; if a
#                                  file is missing or differs, fetch it again
#                                  with `npm pack` (npm registry) and verify
#   book/fetch_assets.sh --check   verify only (no network); exit 1 on a mismatch
#
# The files are committed to the repository (about 7 MB with their licences),
# so a normal build only verifies them. This script documents, and can redo,
# exactly where they come from:
#
#   @jupyter-widgets/html-manager 1.0.6  dist/embed-amd.js + its icon fonts  BSD-3-Clause
#   requirejs 2.3.7                      require.js                          MIT
#   mathjax 3.2.2                        es5/tex-svg.js                      Apache-2.0
#
# The folder is deliberately not called _static: Jupyter Book 1 adds every .js
# file of a book-root _static/ folder to every page as a <script>.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/_offline"
sums="$dest/SHA256SUMS"

verify() { (cd "$dest" && sha256sum --quiet -c SHA256SUMS); }

if verify >/dev/null 2>&1; then
  echo "book/_offline: all $(wc -l < "$sums") files match SHA256SUMS"
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "book/_offline does not match SHA256SUMS; run book/fetch_assets.sh" >&2
  verify || true
  exit 1
fi

command -v npm >/dev/null || { echo "npm is needed to fetch the assets" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @jupyter-widgets/html-manager@1.0.6 requirejs@2.3.7 mathjax@3.2.2 >/dev/null)
for t in jupyter-widgets-html-manager-1.0.6 requirejs-2.3.7 mathjax-3.2.2; do
  mkdir -p "$tmp/$t" && tar xzf "$tmp/$t.tgz" -C "$tmp/$t"
done
wm="$tmp/jupyter-widgets-html-manager-1.0.6/package"
mkdir -p "$dest/widgets" "$dest/licenses"
cp "$wm/dist/embed-amd.js" "$dest/widgets/"
# font-awesome icon fonts that embed-amd.js loads relative to itself; with them
# the widgets' icons render and the page requests nothing that is missing
cp "$wm"/dist/*.woff2 "$wm"/dist/*.woff "$dest/widgets/"
cp "$tmp/requirejs-2.3.7/package/require.js" "$dest/"
cp "$tmp/mathjax-3.2.2/package/es5/tex-svg.js" "$dest/"
cp "$wm/LICENSE" "$dest/licenses/jupyter-widgets-html-manager.LICENSE"
cp "$wm/dist/embed.js.LICENSE.txt" "$dest/licenses/jupyter-widgets-html-manager.THIRD-PARTY.txt"
cp "$tmp/mathjax-3.2.2/package/LICENSE" "$dest/licenses/mathjax.LICENSE"
# the requirejs tarball ships no LICENSE file; require.js's header says
# "Copyright jQuery Foundation and other contributors. Released under MIT license"
cat > "$dest/licenses/requirejs.LICENSE" <<'MIT'
RequireJS 2.3.7
Copyright jQuery Foundation and other contributors, https://jquery.org/
Released under the MIT license
(https://github.com/requirejs/requirejs/blob/master/LICENSE):

Permission is hereby granted, free of charge, to any person obtaining
a copy of this software and associated documentation files (the
"Software"), to deal in the Software without restriction, including
without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to
permit persons to whom the Software is furnished to do so, subject to
the following conditions:

The above copyright notice and this permission notice shall be
included in all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE
LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION
OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
MIT
verify
echo "book/_offline: fetched and verified $(wc -l < "$sums") files"
