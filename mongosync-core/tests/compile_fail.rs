//! Illegal transitions do not compile (the typestate's promise).

#[test]
fn illegal_transitions_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}
