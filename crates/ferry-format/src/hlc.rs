//! Hybrid logical clocks: wall-clock milliseconds that never go backwards.
//!
//! An [`Hlc`] is 48 bits of milliseconds since the Unix epoch and a 16-bit counter, packed
//! in a `u64` so that comparing the integers compares the clocks. A device's [`HlcClock`]
//! issues strictly increasing values whatever its wall clock does (steps back, stands still,
//! or races ahead on another device), and absorbs every remote value it sees, so an op
//! written after seeing another always sorts after it.

use std::fmt;

/// A hybrid logical clock value: `wall_ms << 16 | counter`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hlc(u64);

/// The clock cannot move: it has reached the largest representable time.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the hybrid logical clock is exhausted (it reached the year 10889); a remote device sent a clock value from the far future"
)]
pub struct HlcError;

impl Hlc {
    /// Largest wall-clock milliseconds an HLC can carry (48 bits).
    pub const MAX_WALL_MS: u64 = (1 << 48) - 1;
    const COUNTER_BITS: u32 = 16;
    const MAX_COUNTER: u64 = (1 << Self::COUNTER_BITS) - 1;

    /// Builds a value from its parts; `None` if `wall_ms` does not fit in 48 bits.
    pub fn new(wall_ms: u64, counter: u16) -> Option<Self> {
        (wall_ms <= Self::MAX_WALL_MS).then_some(Self(wall_ms << Self::COUNTER_BITS | u64::from(counter)))
    }

    /// The packed form, as stored and compared.
    pub const fn to_u64(self) -> u64 {
        self.0
    }

    /// Reads the packed form. Every `u64` is a valid HLC.
    pub const fn from_u64(packed: u64) -> Self {
        Self(packed)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn wall_ms(self) -> u64 {
        self.0 >> Self::COUNTER_BITS
    }

    /// The logical counter within one millisecond.
    pub const fn counter(self) -> u16 {
        (self.0 & Self::MAX_COUNTER) as u16
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hlc({}ms+{})", self.wall_ms(), self.counter())
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:05}", self.wall_ms(), self.counter())
    }
}

/// The clock of one device: the last value it issued or absorbed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    /// Resumes a clock from the last value it issued or absorbed (persisted by the caller).
    pub const fn resume(last: Hlc) -> Self {
        Self { last }
    }

    /// The last value issued or absorbed.
    pub const fn last(&self) -> Hlc {
        self.last
    }

    /// Issues the next value, strictly greater than every value issued or absorbed before.
    ///
    /// Follows the wall clock when it is ahead; otherwise counts within the last millisecond
    /// and, when the counter is full, borrows the next millisecond rather than repeat a value.
    ///
    /// # Errors
    /// [`HlcError`] only when the clock already sits at the largest representable value.
    pub fn tick(&mut self, wall_ms: u64) -> Result<Hlc, HlcError> {
        let wall_ms = wall_ms.min(Hlc::MAX_WALL_MS);
        let next = if wall_ms > self.last.wall_ms() {
            Hlc(wall_ms << Hlc::COUNTER_BITS)
        } else {
            // Same or earlier wall clock: move one logical step. Because the counter is the low
            // bits, "+1" both increments the counter and carries into the next millisecond.
            Hlc(self.last.0.checked_add(1).ok_or(HlcError)?)
        };
        self.last = next;
        Ok(next)
    }

    /// Absorbs a value seen on another device: later ticks sort after it.
    pub fn observe(&mut self, remote: Hlc) {
        self.last = self.last.max(remote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn follows_the_wall_clock_when_it_moves_forward() {
        let mut clock = HlcClock::default();
        assert_eq!(clock.tick(1_000), Ok(Hlc::new(1_000, 0).unwrap()));
        assert_eq!(clock.tick(1_005), Ok(Hlc::new(1_005, 0).unwrap()));
    }

    #[test]
    fn counts_when_the_wall_clock_stands_still_or_goes_backwards() {
        let mut clock = HlcClock::default();
        clock.tick(5_000).unwrap();
        assert_eq!(clock.tick(5_000), Ok(Hlc::new(5_000, 1).unwrap()));
        assert_eq!(clock.tick(10), Ok(Hlc::new(5_000, 2).unwrap()));
    }

    #[test]
    fn counter_overflow_borrows_the_next_millisecond() {
        let mut clock = HlcClock::resume(Hlc::new(7, u16::MAX).unwrap());
        assert_eq!(clock.tick(7), Ok(Hlc::new(8, 0).unwrap()));
        assert_eq!(clock.tick(0), Ok(Hlc::new(8, 1).unwrap()));
    }

    #[test]
    fn absorbs_remote_values_from_a_clock_running_ahead() {
        let mut clock = HlcClock::default();
        clock.tick(1_000).unwrap();
        clock.observe(Hlc::new(90_000, 3).unwrap());
        assert_eq!(clock.tick(1_001), Ok(Hlc::new(90_000, 4).unwrap()));
        // An older remote value changes nothing.
        clock.observe(Hlc::new(5, 0).unwrap());
        assert_eq!(clock.tick(1_002), Ok(Hlc::new(90_000, 5).unwrap()));
    }

    #[test]
    fn exhausted_clock_is_an_error_not_a_panic_or_a_repeat() {
        let mut clock = HlcClock::resume(Hlc::from_u64(u64::MAX));
        assert_eq!(clock.tick(u64::MAX), Err(HlcError));
        assert_eq!(clock.last(), Hlc::from_u64(u64::MAX));
        let mut clock = HlcClock::default();
        assert_eq!(clock.tick(u64::MAX), Ok(Hlc::new(Hlc::MAX_WALL_MS, 0).unwrap()));
    }

    #[test]
    fn parts_roundtrip() {
        let hlc = Hlc::new(1_763_000_000_123, 9).unwrap();
        assert_eq!((hlc.wall_ms(), hlc.counter()), (1_763_000_000_123, 9));
        assert_eq!(Hlc::from_u64(hlc.to_u64()), hlc);
        assert_eq!(Hlc::new(Hlc::MAX_WALL_MS + 1, 0), None);
    }

    #[derive(Debug, Clone)]
    enum Event {
        Tick(u64),
        Observe(u64),
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![(0u64..=1 << 50).prop_map(Event::Tick), any::<u64>().prop_map(|v| Event::Observe(v >> 1)),]
    }

    proptest! {
        /// Whatever the wall clock and the remotes do, every issued value is greater than
        /// everything issued or observed before it.
        #[test]
        fn ticks_are_strictly_monotonic_and_dominate_observed_values(events in proptest::collection::vec(event(), 1..200)) {
            let mut clock = HlcClock::default();
            let mut high_water = Hlc::default();
            for event in events {
                match event {
                    Event::Tick(wall) => {
                        let hlc = clock.tick(wall).unwrap();
                        prop_assert!(hlc > high_water);
                        high_water = hlc;
                    }
                    Event::Observe(remote) => {
                        let remote = Hlc::from_u64(remote);
                        clock.observe(remote);
                        high_water = high_water.max(remote);
                    }
                }
            }
        }
    }
}
