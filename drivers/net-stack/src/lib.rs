//! The network stack over a driver: smoltcp glue and the services (filled in next).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
