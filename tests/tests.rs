//! Integration tests, one binary, one module per area. Plugins are the real
//! components built from plugins/ by host/build.rs.
#![allow(clippy::unwrap_used)]

mod util;

mod cache;
mod check;
mod cli;
mod complain;
mod conformance;
mod daemon;
mod docker;
mod e2e;
mod fail2ban_client;
mod file_actions;
mod filters;
mod firewalld;
mod fleet;
mod grants;
mod hardening;
mod ignore_command;
mod import;
mod ipset;
mod iptables;
mod jail_options;
mod languages;
mod lapi;
mod log_target;
mod mail;
mod nftables;
mod observability;
mod package;
mod packs;
mod prefix_bans;
mod regex_cli;
mod reporting;
mod route;
mod sandbox;
mod shared_read;
mod shell_confinement;
mod shorewall;
mod store;
mod symbol_order;
mod ufw;
