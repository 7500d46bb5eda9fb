//! Web: the node's HTTP surfaces — the customer console, the web-chat widget, and the
//! Telegram and WhatsApp channels. May import `engine`, `domain` and `platform`.

pub mod channels;
pub mod console;
pub mod widget;
