//! Web: the node's HTTP surfaces — the customer console, its JSON API (`api`), the web-chat widget, and the
//! Telegram and WhatsApp channels — and, on a node with a public host, HTTPS for all of
//! them (`tls`: the ACME certificate, the port-80 redirect). May import `engine`, `domain`
//! and `platform`.

pub mod api;
pub mod channels;
pub mod console;
pub mod tls;
pub mod widget;
