//! Where to look for another device, best first: the one place this order is decided, for the
//! daemon's links and for a one-off pull alike.

/// The addresses to try for a device, best first and without repeats, each with whether it is
/// stored in the vault: where mDNS saw it just now (`mdns`), then the stored addresses in the
/// order the vault keeps them (the one that last worked first).
pub fn dial_order(mdns: Option<String>, stored: Vec<String>) -> Vec<(String, bool)> {
    let mut order: Vec<(String, bool)> = mdns.map(|addr| (addr.clone(), stored.contains(&addr))).into_iter().collect();
    for addr in stored {
        if !order.iter().any(|(known, _)| *known == addr) {
            order.push((addr, true));
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::dial_order;

    #[test]
    fn mdns_first_then_stored_without_repeats() {
        let s = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        type Row<'a> = (Option<&'a str>, &'a [&'a str], &'a [(&'a str, bool)]);
        #[rustfmt::skip]
        let table: &[Row<'_>] = &[
            (None, &[], &[]),
            (None, &["a:1", "b:2"], &[("a:1", true), ("b:2", true)]),
            (Some("m:9"), &[], &[("m:9", false)]),
            (Some("m:9"), &["a:1"], &[("m:9", false), ("a:1", true)]),
            // mDNS saw a stored address: tried first, once, and known as stored
            (Some("b:2"), &["a:1", "b:2"], &[("b:2", true), ("a:1", true)]),
            (None, &["a:1", "a:1"], &[("a:1", true)]),
        ];
        for (mdns, stored, expected) in table {
            let expected: Vec<(String, bool)> = expected.iter().map(|(a, s)| ((*a).to_owned(), *s)).collect();
            assert_eq!(dial_order(mdns.map(str::to_owned), s(stored)), expected, "{mdns:?} {stored:?}");
        }
    }
}
