// A small OSC 1.0 encoder/decoder for the test harness (what Max's udpsend and udpreceive do).
// Types: i (int32), f (float32), s (string), plus decode of d, h, T, F, N and #bundle.
"use strict";

function pad4(n) {
  return (n + 3) & ~3;
}

function oscString(s) {
  const raw = Buffer.from(String(s), "utf8");
  const out = Buffer.alloc(pad4(raw.length + 1));
  raw.copy(out);
  return out;
}

// Max's atoms -> OSC: the message selector is the address; ints are i, other numbers f, the rest s.
function encodeMessage(address, args) {
  let tags = ",";
  const parts = [];
  for (const a of args) {
    if (typeof a === "number" && Number.isInteger(a) && a >= -2147483648 && a <= 2147483647) {
      tags += "i";
      const b = Buffer.alloc(4);
      b.writeInt32BE(a);
      parts.push(b);
    } else if (typeof a === "number") {
      tags += "f";
      const b = Buffer.alloc(4);
      b.writeFloatBE(a);
      parts.push(b);
    } else {
      tags += "s";
      parts.push(oscString(a));
    }
  }
  return Buffer.concat([oscString(address), oscString(tags), ...parts]);
}

function readString(buf, offset) {
  let end = offset;
  while (end < buf.length && buf[end] !== 0) end++;
  if (end >= buf.length) throw new Error("OSC string without terminator");
  return { value: buf.toString("utf8", offset, end), next: pad4(end + 1) };
}

function decodeMessage(buf) {
  const address = readString(buf, 0);
  let offset = address.next;
  const tags = offset < buf.length ? readString(buf, offset) : { value: ",", next: offset };
  if (tags.value[0] !== ",") throw new Error("OSC type tags must start with ','");
  offset = tags.next;
  const args = [];
  for (const t of tags.value.slice(1)) {
    if (t === "i") { args.push(buf.readInt32BE(offset)); offset += 4; }
    else if (t === "f") { args.push(buf.readFloatBE(offset)); offset += 4; }
    else if (t === "d") { args.push(buf.readDoubleBE(offset)); offset += 8; }
    else if (t === "h") { args.push(Number(buf.readBigInt64BE(offset))); offset += 8; }
    else if (t === "s") { const s = readString(buf, offset); args.push(s.value); offset = s.next; }
    else if (t === "T") args.push(1);
    else if (t === "F") args.push(0);
    else if (t === "N") args.push(null);
    else throw new Error(`OSC type tag '${t}' not supported`);
  }
  return { address: address.value, args, types: tags.value.slice(1) };
}

// A packet (message or bundle) -> list of messages.
function decodePacket(buf) {
  if (buf.length >= 8 && buf.toString("ascii", 0, 8) === "#bundle\0") {
    const out = [];
    let offset = 16;
    while (offset + 4 <= buf.length) {
      const size = buf.readInt32BE(offset);
      out.push(...decodePacket(buf.subarray(offset + 4, offset + 4 + size)));
      offset += 4 + size;
    }
    return out;
  }
  return [decodeMessage(buf)];
}

module.exports = { encodeMessage, decodeMessage, decodePacket };
