//! Tests hold `docs/FORMAT.md` to its vectors: each is a line `name: \`value\`` there.

/// Asserts that `docs/FORMAT.md` states `computed` as the vector `name`.
pub(crate) fn check(name: &str, computed: String) {
    let line = format!("{name}: `{computed}`");
    assert!(include_str!("../../../docs/FORMAT.md").contains(&line), "docs/FORMAT.md must contain the line\n{line}");
}
