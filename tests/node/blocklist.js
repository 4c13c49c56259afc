// The Node.js side of tests/test_block_list.cpp: builds a net.BlockList from the
// rules on the command line and prints what check() says for each address, so the
// C++ side can compare its own answers with Node's, line for line.
//   node blocklist.js RULE... -- ADDRESS...
//   RULE:    address,IP,FAMILY | range,START,END,FAMILY | subnet,NET,PREFIX,FAMILY
//   ADDRESS: IP,FAMILY        prints "IP FAMILY true|false"
'use strict';
const { BlockList } = require('net');

const args = process.argv.slice(2);
const split = args.indexOf('--');
const list = new BlockList();
for (const rule of args.slice(0, split)) {
  const [kind, a, b, c] = rule.split(',');
  if (kind === 'address') list.addAddress(a, b);
  else if (kind === 'range') list.addRange(a, b, c);
  else list.addSubnet(a, Number(b), c);
}
for (const query of args.slice(split + 1)) {
  const [ip, family] = query.split(',');
  process.stdout.write(`${ip} ${family} ${list.check(ip, family)}\n`);
}
