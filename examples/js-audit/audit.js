// A wasmban action in JavaScript: an audit trail of bans. Every ban and
// unban (and the jail's start and stop) becomes one JSON line in the daemon
// log, tagged with the plugin's name, ready for a log shipper or a SIEM.
// It is granted nothing but `log`: it cannot touch files, the network or
// the firewall.
//
// Options (the action's [Init] or the jail's action line):
//   name    the jail (wasmban passes it)
//   level   debug, info (default) or warn: the log level of audit lines
//   lines   yes: include the log lines that led to each ban
//   fields  yes (default): include what the filter captured (user, ...)
//
// Build: componentize-js --wit wit --world-name log-action -d http -d fetch-event --out audit.wasm audit.js

import { log } from 'wasmban:plugin/log@0.1.0';

const LEVELS = ['debug', 'info', 'warn'];

function flag(options, key, fallback) {
  const value = (options.get(key) ?? fallback).trim().toLowerCase();
  if (['yes', 'true', 'on', '1'].includes(value)) return true;
  if (['no', 'false', 'off', '0'].includes(value)) return false;
  throw `option \`${key}\` = ${JSON.stringify(value)}: expected yes or no`;
}

class Handler {
  constructor(settings) {
    this.settings = settings;
  }

  static create(pairs) {
    const options = new Map(pairs);
    const level = (options.get('level') ?? 'info').trim().toLowerCase();
    if (!LEVELS.includes(level)) {
      throw `option \`level\` = ${JSON.stringify(level)}: expected ${LEVELS.join(', ')}`;
    }
    return new Handler({
      jail: options.get('name') ?? 'default',
      level,
      lines: flag(options, 'lines', 'no'),
      fields: flag(options, 'fields', 'yes'),
    });
  }

  write(record) {
    log(this.settings.level, `AUDIT ${JSON.stringify(record)}`);
  }

  start() {
    this.write({ event: 'start', jail: this.settings.jail });
  }

  stop() {
    this.write({ event: 'stop', jail: this.settings.jail });
  }

  check() {}

  record(event, ticket) {
    const record = {
      event,
      jail: ticket.jail,
      ip: ticket.ip,
      time: Number(ticket.time),
      bantime: Number(ticket.bantime),
      failures: ticket.failures,
      ban_count: ticket.banCount,
    };
    if (this.settings.fields && ticket.fields.length > 0) {
      record.fields = {};
      for (const [key, value] of ticket.fields) {
        record.fields[key] = key in record.fields ? [].concat(record.fields[key], value) : value;
      }
    }
    if (this.settings.lines && event === 'ban') {
      record.matches = ticket.matches;
    }
    this.write(record);
    return { tag: 'ok', val: undefined };
  }

  ban(tickets) {
    return tickets.map((t) => this.record('ban', t));
  }

  unban(tickets) {
    return tickets.map((t) => this.record('unban', t));
  }
}

export const action = { Handler };
