/**
 * Text a host or a server chose (a model name, an error message, a file name, a process name) may
 * carry terminal control sequences: an OSC that retitles the window or writes the clipboard, a CSI
 * that moves the cursor and overwrites the lines above, a carriage return that hides a warning.
 * Printed output keeps SGR colours (chalk's, the only sequences zanuri itself writes) and drops
 * every other escape sequence and control character except newline and tab. JSON needs none of this:
 * JSON.stringify escapes control characters.
 */
// ESC [ ... final (CSI), ESC ] ... BEL/ST (OSC), ESC P/X/^/_ ... ST (DCS, SOS, PM, APC), ESC + one byte.
const sequence = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[@-Z\\-~]?|\x9b[0-?]*[ -/]*[@-~]/g;
const sgr = /^(?:\x1b\[|\x9b)[0-9;]*m$/;
const control = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

export function terminalSafe(text: string): string {
  let out = '';
  let last = 0;
  const strip = (plain: string): string => plain.replace(/\r\n/g, '\n').replace(control, '');
  for (const match of text.matchAll(sequence)) {
    out += strip(text.slice(last, match.index));
    if (sgr.test(match[0]) && match[0].startsWith('\x1b')) out += match[0];
    last = match.index + match[0].length;
  }
  return out + strip(text.slice(last));
}
