"""The landing page's stylesheet and script, served same-origin under ``/static/``.

They are separate responses (not inline) so the page can be served with a strict
Content-Security-Policy (:data:`LANDING_CSP`): no inline script or style, nothing from another
origin. The status strips are inline SVG drawn with presentation attributes, which CSP allows.
"""

from __future__ import annotations

LANDING_CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
"""The Content-Security-Policy of ``/`` (browsers intersect it with any the web config adds)."""

CSS = """
:root{--fg:#1c2430;--muted:#4f5b6b;--line:#d8dee6;--bg:#f6f8fa;--card:#fff;--accent:#1f5fbf}
*{box-sizing:border-box}
html{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
body{margin:0}
a{color:var(--accent)}
header.top{display:flex;flex-wrap:wrap;gap:.3em 1.2em;align-items:baseline;padding:.8em 1.2em;
background:#14213d;color:#fff}
header.top h1{font-size:1.15em;margin:0}
header.top a{color:#cfe0ff}
header.top nav{display:flex;flex-wrap:wrap;gap:.2em 1em}
header.top .meta{color:#c8d0dc;font-size:.85em}
main{padding:1em 1.2em;max-width:100%}
h2{font-size:1em;margin:0 0 .5em}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(15em,1fr));gap:.8em;
margin-bottom:1em}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.7em .9em;
min-width:0;overflow-x:auto}
abbr{text-decoration:none}
.card table{border-collapse:collapse;width:100%;font-size:.9em}
.card td,.card th{padding:.15em .3em;text-align:left;border-bottom:1px solid #eef1f5}
.card td.n,.card th.n{text-align:right;font-variant-numeric:tabular-nums}
.card ul{margin:0;padding-left:1.1em}
.bar{display:block;margin:.15em 0 .5em}
.small{font-size:.85em;color:var(--muted)}
.ok{color:#0b5d22;font-weight:600}.bad{color:#8a1c12;font-weight:600}
form.filters{display:flex;flex-wrap:wrap;gap:.5em .8em;align-items:end;background:var(--card);
border:1px solid var(--line);border-radius:8px;padding:.6em .8em;margin-bottom:.8em}
form.filters label{display:flex;flex-direction:column;font-size:.8em;color:var(--muted);gap:.1em}
form.filters select,form.filters input{font:inherit;font-size:.95rem;padding:.25em .35em;
border:1px solid #aab4c0;border-radius:4px;min-width:7em;max-width:100%;background:#fff;
color:var(--fg)}
form.filters select{max-width:18em;text-overflow:ellipsis}
form.filters button,form.filters a.reset{font:inherit;font-size:.9rem;padding:.3em .8em;
border-radius:4px}
form.filters button{background:var(--accent);color:#fff;border:0}
.tablewrap{background:var(--card);border:1px solid var(--line);border-radius:8px}
table.targets{border-collapse:separate;border-spacing:0;width:100%;font-size:.88em}
table.targets th{position:sticky;top:0;z-index:1;background:#e9eef4;text-align:left;
padding:.45em .5em;border-bottom:1px solid var(--line);white-space:nowrap}
table.targets th a{color:var(--fg);text-decoration:none}
table.targets th a:hover,table.targets th a:focus{text-decoration:underline}
table.targets td{padding:.35em .5em;border-bottom:1px solid #eef1f5;vertical-align:middle}
table.targets tbody tr:hover{background:#f3f7fc}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
code,.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
.id{white-space:nowrap}
.chip{display:inline-block;padding:.05em .55em;border-radius:999px;font-size:.85em;
font-weight:600;border:1px solid transparent;white-space:nowrap}
.s-InProgress{background:#d3f2dc;color:#0b5d22;border-color:#9fd8b0}
.s-Idle,.s-Preparing{background:#fff1c2;color:#5c3f00;border-color:#ecd27a}
.s-Stopped,.s-Exited{background:#e4e8ef;color:#2f3a4b;border-color:#c5ccd8}
.s-NotFound{background:#fde0dd;color:#8a1c12;border-color:#f2b3ab}
.s-Unknown{background:#f0f0f0;color:#3d3d3d;border-color:#bbb;border-style:dashed}
.lbl{display:inline-block;background:#eef2f7;border-radius:4px;padding:0 .35em;margin:.05em;
font-size:.85em;white-space:nowrap}
.err{color:#8a1c12}
button.copy{display:none;font-size:.8em;line-height:1;padding:.15em .3em;margin-left:.2em;
border:1px solid #aab4c0;border-radius:3px;background:#fff;color:var(--fg);cursor:pointer}
html.js button.copy{display:inline-block}
button.copy.done{background:#d3f2dc}
.legend{display:flex;flex-wrap:wrap;gap:.3em .8em;font-size:.8em;color:var(--muted);
margin:.4em 0}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;vertical-align:-.05em;
margin-right:.25em}
.f-InProgress{background:#2e9e4f}.f-Idle{background:#d9a400}.f-Preparing{background:#f0c948}
.f-Stopped,.f-Exited{background:#8795a8}.f-NotFound{background:#d0453a}
.f-Unknown{background:#e1e5ea}
.empty{padding:1em;color:var(--muted)}
.offscreen{position:fixed;top:0;left:-10000px;width:1px;height:1px;opacity:0}
@media (max-width:760px){
 html{font-size:14px}
 main{padding:.6em}
 header.top{padding:.6em}
 form.filters label{flex:1 1 40%}
 table.targets,table.targets tbody,table.targets tr,table.targets td{display:block;width:100%}
 table.targets thead{display:none}
 table.targets tr{border-bottom:2px solid var(--line);padding:.4em .2em}
 table.targets td{border:0;padding:.15em .4em;display:flex;gap:.6em;align-items:center;
 flex-wrap:wrap}
 table.targets td:empty{display:none}
 table.targets td::before{content:attr(data-label);flex:0 0 6.5em;color:var(--muted);
 font-size:.85em}
 .sortbar{display:block}
}
.sortbar{display:none;margin:.3em 0 .6em;font-size:.9em}
.sortbar a{margin-right:.6em}
"""

JS = """
(function(){
document.documentElement.classList.add('js');
function fallback(text){var t=document.createElement('textarea');t.value=text;
t.setAttribute('readonly','');t.className='offscreen';document.body.appendChild(t);t.select();
try{document.execCommand('copy')}catch(e){}document.body.removeChild(t)}
document.addEventListener('click',function(ev){
var b=ev.target.closest('button.copy');if(!b){return}
var text=b.getAttribute('data-copy');
var done=function(){b.classList.add('done');setTimeout(function(){b.classList.remove('done')},900)};
if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(text).then(done,
function(){fallback(text);done()})}else{fallback(text);done()}});
})();
"""
