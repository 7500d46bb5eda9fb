//! Changing an account's email address: asked for on "Email address" (`/account/email`),
//! done by a single-use link sent to the new address (30 minutes, stored hashed); the old
//! address is told when the change is asked for and when it is done. Whether another
//! account uses the new address is said only to that address's mailbox (the requester sees
//! the same page either way), as sign-in itself tells no one whether an account exists.

pub mod model;
pub mod service;
pub mod store;
pub mod web;
