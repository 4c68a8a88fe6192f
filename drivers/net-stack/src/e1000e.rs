//! The e1000e driver as a [`Nic`].

use crate::Nic;
use moat_e1000e::{E1000e, E1000eError, Platform};

impl<P: Platform> Nic for E1000e<P> {
    type Error = E1000eError;

    fn mac_address(&self) -> [u8; 6] {
        E1000e::mac_address(self)
    }

    fn receive(&mut self, out: &mut [u8]) -> Result<Option<usize>, E1000eError> {
        E1000e::receive(self, out)
    }

    fn can_transmit(&mut self) -> bool {
        E1000e::can_transmit(self).unwrap_or(false)
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), E1000eError> {
        E1000e::transmit(self, frame)
    }
}
