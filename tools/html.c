/* html.c - `--format=html`: one self-contained page, no network.
 *
 * The page is the JSON report (report_json, doc/report-json.md) in a
 * <script type="application/json"> element and a small inline renderer that
 * draws it: a row per segment with its lifetime as a bar from creation to
 * removal (a leak runs to the end of the recording and is red), the attach
 * spans of each process inside it, and, on click, the details and the
 * creating and removing stacks. The renderer writes text with textContent
 * only, never innerHTML, so nothing from a log can become markup.
 *
 * Embedding: inside <script> the HTML parser ends the element at "</script"
 * and treats "<!--" specially, whatever the type. '<', '>' and '&' can only
 * occur inside JSON strings (they are no JSON punctuation), where "\u003c"
 * means the same character, so they are written as \u escapes and the
 * element's text can contain neither sequence.
 */
#include <err.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tool.h"

static const char page_head[] =
"<!DOCTYPE html>\n"
"<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
"style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
"<title>shmkeeper report</title>\n"
"<style>\n"
"body{font:13px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}\n"
"h1{font-size:1.3em;margin:0 0 .3em}\n"
"#summary{margin:.3em 0 1em}\n"
".legend span{display:inline-block;margin-right:1.2em}\n"
".sw{display:inline-block;width:1.2em;height:.8em;vertical-align:middle;margin-right:.3em;border-radius:2px}\n"
"#timeline{border-top:1px solid #ccc}\n"
".row{border-bottom:1px solid #eee;cursor:pointer}\n"
".row:hover{background:#f6f8ff}\n"
".line{display:flex;align-items:center;height:24px}\n"
".label{width:26em;flex:none;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;padding-right:.5em}\n"
".track{position:relative;flex:1;height:16px;background:#fafafa}\n"
".life{position:absolute;top:2px;height:12px;background:#9bb7d4;border-radius:2px;min-width:2px}\n"
".row.removed_by_other .life{background:#b7a6d9}\n"
".row.gone .life{background:#ccc}\n"
".row.not_created .life{background:#ddd}\n"
".row.leaked .life,.row.leaked_unknown .life{background:#e0413a}\n"
".row.suppressed .life{background:#e8a33a}\n"
".row.leaked .label,.row.leaked_unknown .label{color:#b00;font-weight:bold}\n"
".att{position:absolute;top:5px;height:6px;border-radius:1px;min-width:2px;opacity:.9}\n"
".tag{font-size:.85em;padding:0 .4em;margin-right:.2em;border-radius:3px;background:#eee}\n"
".leaked .tag,.leaked_unknown .tag{background:#e0413a;color:#fff}\n"
".details{display:none;margin:0 0 .6em 26em;white-space:pre-wrap;font:12px/1.35 ui-monospace,monospace;"
"background:#f7f7f7;border-left:3px solid #9bb7d4;padding:.4em .6em}\n"
".row.open .details{display:block}\n"
".leaked .details,.leaked_unknown .details{border-left-color:#e0413a}\n"
"#warnings{white-space:pre-wrap;font:12px/1.35 ui-monospace,monospace;color:#8a5a00;margin:0 0 .8em}\n"
".axis{display:flex;margin-left:26em;color:#777;font-size:.85em;justify-content:space-between}\n"
"</style></head><body>\n"
"<h1>shmkeeper: shared-memory segments over time</h1>\n"
"<div id=\"summary\"></div>\n"
"<div id=\"warnings\"></div>\n"
"<div class=\"legend\"><span><i class=\"sw\" style=\"background:#e0413a\"></i>leaked</span>"
"<span><i class=\"sw\" style=\"background:#e8a33a\"></i>leaked, suppressed</span>"
"<span><i class=\"sw\" style=\"background:#9bb7d4\"></i>removed by its creator</span>"
"<span><i class=\"sw\" style=\"background:#b7a6d9\"></i>removed by another process</span>"
"<span><i class=\"sw\" style=\"background:#ccc\"></i>gone or not created here</span>"
"<span>thin bars: attached, one colour per process; click a row for details</span></div>\n"
"<div class=\"axis\" id=\"axis\"></div>\n"
"<div id=\"timeline\"></div>\n"
"<noscript>The timeline needs JavaScript; the data is the JSON report in this file.</noscript>\n"
"<script type=\"application/json\" id=\"report\">\n";

static const char page_tail[] =
"</script>\n"
"<script>\n"
"(function(){\n"
"'use strict';\n"
"var R=JSON.parse(document.getElementById('report').textContent);\n"
"function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;"
"if(text!==undefined)e.textContent=text;return e;}\n"
"var segs=R.segments||[],procs=R.processes||[];\n"
"var t0=Infinity,t1=-Infinity;\n"
"function see(t){if(typeof t==='number'){if(t<t0)t0=t;if(t>t1)t1=t;}}\n"
"segs.forEach(function(s){if(s.created)see(s.created.mono_ns);if(s.removed)see(s.removed.mono_ns);"
"(s.events||[]).forEach(function(e){see(e.mono_ns);});});\n"
"if(!isFinite(t0)){t0=0;t1=1;}\n"
"if(t1<=t0)t1=t0+1;\n"
"/* Leaks run to the end: a little past the last event, so they stand out. */\n"
"var end=t1+(t1-t0)*0.04;var span=end-t0;\n"
"function pct(t){return ((t-t0)/span*100).toFixed(3)+'%';}\n"
"function wid(a,b){return (Math.max(0,b-a)/span*100).toFixed(3)+'%';}\n"
"function ms(t){return ((t-t0)/1e6).toFixed(3)+' ms';}\n"
"function pname(i){var p=procs[i];if(!p)return '?';var e=p.exe||'?';return p.pid+' ('+e.split('/').pop()+')';}\n"
"function hue(i){return (i*137.508)%360;}\n"
"function ident(s){return s.kind==='sysv'?('SysV shmid '+s.shmid+' key '+(s.key===0?'IPC_PRIVATE':"
"'0x'+((s.key>>>0).toString(16)).padStart(8,'0'))):('POSIX '+s.name);}\n"
"function frames(bt){if(!bt||!bt.length)return '    (no backtrace recorded)\\n';var out='';"
"bt.forEach(function(f,i){out+='    #'+i+' '+(f.function||'\\u003f\\u003f\\u003f')+(f.inlined?' (inlined)':'')+"
"(f.file?' '+f.file+':'+f.line:'')+(f.module?' ('+f.module+'+'+f.offset+')':' '+f.address)+'\\n';});return out;}\n"
"var sm=R.summary||{};\n"
"function pl(n,w){return n+' '+w+(n===1?'':(w==='process'?'es':'s'));}\n"
"document.getElementById('summary').textContent=pl(sm.processes||0,'process')+', '+"
"pl(sm.segments_created||0,'segment')+' created, '+(sm.segments_removed||0)+' removed ('+"
"(sm.removed_by_other||0)+' by another process), '+(sm.leaks||0)+' leaked ('+(sm.leaked_bytes||0)+' bytes)'+"
"(sm.suppressed?', '+sm.suppressed+' suppressed':'')+'. Log directory: '+R.log_dir;\n"
"/* The library's warnings (span placement), as text. */\n"
"var ws=R.warnings||[];if(ws.length){var wt='Warnings:\\n';ws.forEach(function(w){wt+='  '+w.code+' by '+pname(w.process)+': '+w.text+"
"(w.address?' (address '+w.address+')':'')+(w.error?' ('+w.error+')':'')+'\\n';});"
"if(sm.warnings_omitted)wt+='  ... and '+sm.warnings_omitted+' more\\n';"
"document.getElementById('warnings').textContent=wt;}\n"
"var ax=document.getElementById('axis');for(var k=0;k<=4;k++)ax.appendChild(el('span','',ms(t0+span*k/4)));\n"
"var tl=document.getElementById('timeline');\n"
"segs.forEach(function(s){\n"
"  var st=s.status+(s.suppressed?' suppressed':'');\n"
"  var row=el('div','row '+st);row.setAttribute('data-id',s.id);row.setAttribute('data-status',s.status);\n"
"  var line=el('div','line');var lab=el('div','label');\n"
"  var leak=s.status==='leaked'||s.status==='leaked_unknown';\n"
"  /* The tag first: a long name is cut at the right, the tag stays. */\n"
"  if(leak)lab.appendChild(el('span','tag',s.suppressed?'suppressed':'LEAKED'));\n"
"  lab.appendChild(document.createTextNode(' '+ident(s)+', '+s.size+' B'));\n"
"  var tr=el('div','track');var first=s.created?s.created.mono_ns:(s.events&&s.events.length?s.events[0].mono_ns:t0);\n"
"  var last=s.removed?s.removed.mono_ns:(leak||!s.created?end:t1);\n"
"  if(!s.removed&&!leak&&s.events&&s.events.length)last=Math.max(first,s.events[s.events.length-1].mono_ns);\n"
"  var life=el('div','life');life.style.left=pct(first);life.style.width=wid(first,last);\n"
"  tr.appendChild(life);\n"
"  /* Attach spans: an attach opens one for (process, address), a detach closes it. */\n"
"  var open={};var spans=[];\n"
"  (s.events||[]).forEach(function(e){var k=e.process+'@'+e.address;\n"
"    if(e.type==='attach'){open[k]={p:e.process,a:e.mono_ns,inh:e.inherited};}\n"
"    else if(e.type==='move'){var o=e.process+'@'+e.from;if(open[o]){open[k]=open[o];delete open[o];}}\n"
"    else if(e.type==='detach'&&open[k]){spans.push({p:open[k].p,a:open[k].a,b:e.mono_ns});delete open[k];}});\n"
"  Object.keys(open).forEach(function(k){spans.push({p:open[k].p,a:open[k].a,b:last});});\n"
"  spans.forEach(function(x){var b=el('div','att');b.style.left=pct(x.a);"
"b.style.width=wid(x.a,x.b);b.style.background='hsl('+hue(x.p)+',60%,35%)';"
"b.title='attached by '+pname(x.p)+' from '+ms(x.a)+' to '+ms(x.b);tr.appendChild(b);});\n"
"  line.appendChild(lab);line.appendChild(tr);row.appendChild(line);\n"
"  var d='';d+=ident(s)+', '+s.size+' bytes, mode '+(s.mode||0).toString(8)+', status '+s.status+"
"(s.status_reason?' ('+s.status_reason+')':'')+(s.suppressed?', suppressed by '+s.suppressed:'')+'\\n';\n"
"  if(s.created){d+='created by '+pname(s.created.process)+' at '+s.created.time+' (+'+ms(s.created.mono_ns)+'):\\n'+frames(s.created.backtrace);}\n"
"  else d+='not created by a recorded process\\n';\n"
"  if(s.removed){d+=(s.removed.how==='cleanup'?'cleaned up':'removed')+' by '+pname(s.removed.process)+' at '+s.removed.time+' (+'+ms(s.removed.mono_ns)+'):\\n'+frames(s.removed.backtrace);}\n"
"  else if(leak)d+='never removed: still exists at the end of the recording\\n';\n"
"  /* The first 200 events: a page of a busy server must stay usable. */\n"
"  var evs=s.events||[];evs.slice(0,200).forEach(function(e){d+='  '+ms(e.mono_ns)+' '+e.type+' by '+pname(e.process)+"
"(e.address?' at '+e.address:'')+(e.placed?' (placed)':'')+(e.implicit?' (implicit: '+e.implicit+')':'')+(e.inherited?' (inherited)':'')+'\\n';});\n"
"  if(evs.length>200)d+='  ... and '+(evs.length-200)+' more events (in the JSON report)\\n';\n"
"  (s.events_omitted||[]).forEach(function(o){d+='  ... and '+o.count+' more uses by '+pname(o.process)+' (not kept)\\n';});\n"
"  var det=el('div','details',d);row.appendChild(det);\n"
"  row.title=ident(s)+' \\u2014 '+s.status+(s.created?', created by '+pname(s.created.process):'')+' (click for details)';\n"
"  line.addEventListener('click',function(){row.classList.toggle('open');});\n"
"  tl.appendChild(row);\n"
"});\n"
"if(!segs.length)tl.appendChild(el('p','','No segments were recorded.'));\n"
"document.body.setAttribute('data-rendered',String(segs.length));\n"
"})();\n"
"</script>\n"
"</body></html>\n";

void report_html(FILE *f, struct model *m, struct symbolizer *s, const struct options *o)
{
	char *json = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&json, &len);

	if (!mem)
		err(EXIT_NOREPORT, "out of memory");
	report_json(mem, m, s, o);
	if (fclose(mem) != 0)
		err(EXIT_NOREPORT, "out of memory");
	fputs(page_head, f);
	for (size_t i = 0; i < len; i++) {
		switch (json[i]) {
		case '<': fputs("\\u003c", f); break;
		case '>': fputs("\\u003e", f); break;
		case '&': fputs("\\u0026", f); break;
		default: fputc(json[i], f); break;
		}
	}
	fputs(page_tail, f);
	free(json);
}
