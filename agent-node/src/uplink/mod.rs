//! Uplink: the node's link to the control plane — enrollment, phoning home (reports,
//! commands, certificate renewal) and deprovisioning. Sits beside `node.rs` at the top:
//! commands and reports reach into every layer below (reports read the channels' health).

pub mod deprovision;
pub mod enroll;
pub mod phone_home;
pub mod upgrade;
