//! The address of one PCI function: segment, bus, device and function, shared by PCI
//! discovery in the kernel and by the IOMMU (context entries, groups, fault records).
#![forbid(unsafe_code)]

use core::fmt;
use core::str::FromStr;

/// Largest device number on a bus (5 bits).
const MAX_DEVICE: u8 = 31;
/// Largest function number in a device (3 bits).
const MAX_FUNCTION: u8 = 7;

/// A PCI function's address: segment (PCI domain), bus, device (0..=31) and function (0..=7).
///
/// Device and function are checked on construction, so every `Bdf` names a possible function.
/// Ordering is by segment, bus, device, function — the order `lspci -D` and Linux's sysfs
/// list devices in. [`Display`](fmt::Display) and [`FromStr`] use Linux's `0000:00:03.0` form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bdf {
    // Field order is the sort order: the derived `Ord` compares fields top to bottom.
    segment: u16,
    bus: u8,
    device: u8,
    function: u8,
}

/// Why a [`Bdf`] could not be built or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BdfError {
    /// The device number is above 31.
    DeviceOutOfRange(u8),
    /// The function number is above 7.
    FunctionOutOfRange(u8),
    /// The text is not `SSSS:BB:DD.F` or `BB:DD.F` in hexadecimal.
    Malformed,
}

impl fmt::Display for BdfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BdfError::DeviceOutOfRange(device) => {
                write!(f, "PCI device number {device:#x} is above 0x1f")
            }
            BdfError::FunctionOutOfRange(function) => {
                write!(f, "PCI function number {function:#x} is above 7")
            }
            BdfError::Malformed => f.write_str("not a PCI address of the form 0000:00:03.0"),
        }
    }
}

impl Bdf {
    /// `segment:bus:device.function`, or an error if `device > 31` or `function > 7`.
    pub const fn new(segment: u16, bus: u8, device: u8, function: u8) -> Result<Bdf, BdfError> {
        if device > MAX_DEVICE {
            return Err(BdfError::DeviceOutOfRange(device));
        }
        if function > MAX_FUNCTION {
            return Err(BdfError::FunctionOutOfRange(function));
        }
        Ok(Bdf {
            segment,
            bus,
            device,
            function,
        })
    }

    /// The function at `devfn` (device in bits 7:3, function in bits 2:0) on `bus`. Every
    /// `devfn` byte is valid.
    pub const fn from_devfn(segment: u16, bus: u8, devfn: u8) -> Bdf {
        Bdf {
            segment,
            bus,
            device: devfn >> 3,
            function: devfn & MAX_FUNCTION,
        }
    }

    /// The function a 16-bit requester ID names in `segment` (bus in bits 15:8, devfn in 7:0).
    pub const fn from_requester_id(segment: u16, requester_id: u16) -> Bdf {
        Bdf::from_devfn(segment, (requester_id >> 8) as u8, requester_id as u8)
    }

    /// The PCI segment (domain).
    pub const fn segment(self) -> u16 {
        self.segment
    }

    /// The bus number.
    pub const fn bus(self) -> u8 {
        self.bus
    }

    /// The device number, 0..=31.
    pub const fn device(self) -> u8 {
        self.device
    }

    /// The function number, 0..=7.
    pub const fn function(self) -> u8 {
        self.function
    }

    /// Device and function packed as PCI's devfn byte: `(device << 3) | function`.
    pub const fn devfn(self) -> u8 {
        (self.device << 3) | self.function
    }

    /// The 16-bit requester ID (VT-d "source-id", PCIe "Requester ID"):
    /// `(bus << 8) | (device << 3) | function`. The segment is not part of it.
    pub const fn requester_id(self) -> u16 {
        ((self.bus as u16) << 8) | self.devfn() as u16
    }

    /// The same device and bus with another function number, or an error if `function > 7`.
    pub const fn with_function(self, function: u8) -> Result<Bdf, BdfError> {
        Bdf::new(self.segment, self.bus, self.device, function)
    }
}

impl fmt::Display for Bdf {
    /// Linux's form: `0000:00:03.0`, lowercase hexadecimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

impl fmt::Debug for Bdf {
    // The structured form is noise in test failures and logs; the Linux form says it all.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bdf({self})")
    }
}

impl FromStr for Bdf {
    type Err = BdfError;

    /// Parses `SSSS:BB:DD.F` (as printed) or `BB:DD.F` (segment 0), hexadecimal in either
    /// case, with 1–4 segment digits, 1–2 bus and device digits and one function digit.
    fn from_str(text: &str) -> Result<Bdf, BdfError> {
        let (location, function) = text.split_once('.').ok_or(BdfError::Malformed)?;
        let mut fields = location.rsplit(':');
        let device = fields.next().ok_or(BdfError::Malformed)?;
        let bus = fields.next().ok_or(BdfError::Malformed)?;
        let segment = fields.next();
        if fields.next().is_some() {
            return Err(BdfError::Malformed);
        }
        let segment = match segment {
            Some(digits) => hex_field(digits, 4)?,
            None => 0,
        };
        let bus = hex_field(bus, 2)?;
        let device = hex_field(device, 2)?;
        let function = hex_field(function, 1)?;
        // The widths above bound bus, device and function to one byte and the segment to two.
        Bdf::new(segment as u16, bus as u8, device as u8, function as u8)
    }
}

/// A field of 1..=`max_digits` hexadecimal digits. `u32::from_str_radix` alone would also
/// accept a leading `+`.
fn hex_field(digits: &str, max_digits: usize) -> Result<u32, BdfError> {
    if digits.is_empty()
        || digits.len() > max_digits
        || !digits.bytes().all(|byte| byte.is_ascii_hexdigit())
    {
        return Err(BdfError::Malformed);
    }
    u32::from_str_radix(digits, 16).map_err(|_| BdfError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn bdf(segment: u16, bus: u8, device: u8, function: u8) -> Bdf {
        Bdf::new(segment, bus, device, function).expect("valid test address")
    }

    #[test]
    fn bdf_constructor_checks_device_and_function() {
        assert!(Bdf::new(0, 0xff, 31, 7).is_ok());
        assert_eq!(Bdf::new(0, 0, 32, 0), Err(BdfError::DeviceOutOfRange(32)));
        assert_eq!(Bdf::new(0, 0, 0, 8), Err(BdfError::FunctionOutOfRange(8)));
        assert_eq!(
            bdf(0, 0, 3, 0).with_function(8),
            Err(BdfError::FunctionOutOfRange(8))
        );
        assert_eq!(bdf(0, 0, 3, 0).with_function(2), Ok(bdf(0, 0, 3, 2)));
    }

    #[test]
    fn bdf_displays_like_linux() {
        assert_eq!(bdf(0, 0, 3, 0).to_string(), "0000:00:03.0");
        assert_eq!(bdf(0xabcd, 0xfe, 0x1f, 7).to_string(), "abcd:fe:1f.7");
        assert_eq!(format!("{:?}", bdf(1, 2, 3, 4)), "Bdf(0001:02:03.4)");
    }

    #[test]
    fn bdf_requester_id_and_devfn() {
        let address = bdf(0, 0x03, 0x01, 0x2);
        assert_eq!(address.devfn(), 0x0a);
        assert_eq!(address.requester_id(), 0x030a);
        assert_eq!(bdf(0, 0xff, 31, 7).requester_id(), 0xffff);
        assert_eq!(Bdf::from_requester_id(5, 0x030a), bdf(5, 3, 1, 2));
        assert_eq!(Bdf::from_devfn(0, 1, 0xff), bdf(0, 1, 31, 7));
    }

    #[test]
    fn bdf_orders_by_segment_bus_device_function() {
        let mut addresses = Vec::from([
            bdf(1, 0, 0, 0),
            bdf(0, 2, 0, 0),
            bdf(0, 0, 4, 0),
            bdf(0, 0, 3, 1),
            bdf(0, 0, 3, 0),
        ]);
        addresses.sort();
        let text: Vec<_> = addresses.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "0000:00:03.0",
                "0000:00:03.1",
                "0000:00:04.0",
                "0000:02:00.0",
                "0001:00:00.0"
            ]
        );
    }

    #[test]
    fn bdf_parses_linux_form() {
        assert_eq!("0000:00:03.0".parse(), Ok(bdf(0, 0, 3, 0)));
        assert_eq!("ABCD:FE:1f.7".parse(), Ok(bdf(0xabcd, 0xfe, 0x1f, 7)));
        assert_eq!("03:01.0".parse(), Ok(bdf(0, 3, 1, 0)));
        assert_eq!("1:2:3.4".parse(), Ok(bdf(1, 2, 3, 4)));
    }

    #[test]
    fn bdf_rejects_malformed_text() {
        for text in [
            "",
            "0000:00:03",
            "0000:00:03.",
            "0000:00.0",
            "00000:00:03.0",
            "0000:000:03.0",
            "0000:00:003.0",
            "0000:00:03.00",
            "0:0000:00:03.0",
            "0000:+0:03.0",
            "0000:00:03.+1",
            "0000: 0:03.0",
            "0000:00:03.0 ",
            "0000:00:0g.0",
            "0000::03.0",
        ] {
            assert_eq!(text.parse::<Bdf>(), Err(BdfError::Malformed), "{text:?}");
        }
        assert_eq!(
            "0000:00:20.0".parse::<Bdf>(),
            Err(BdfError::DeviceOutOfRange(0x20))
        );
        assert_eq!(
            "0000:00:03.8".parse::<Bdf>(),
            Err(BdfError::FunctionOutOfRange(8))
        );
    }

    proptest! {
        #[test]
        fn bdf_display_parse_round_trip(segment: u16, bus: u8, device in 0u8..32, function in 0u8..8) {
            let address = bdf(segment, bus, device, function);
            prop_assert_eq!(address.to_string().parse::<Bdf>(), Ok(address));
            prop_assert_eq!(Bdf::from_requester_id(segment, address.requester_id()), address);
        }

        #[test]
        fn bdf_parse_never_panics(text in "\\PC{0,16}") {
            let _ = text.parse::<Bdf>();
        }
    }
}
