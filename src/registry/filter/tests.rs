//! The filter's table tests: Flux's default ordering, Masterminds
//! constraints, Flux version parsing, `extract`, Go `ParseFloat`, limits.

use super::extract::Template;
use super::gofloat::*;
use super::version::*;
use super::*;
use proptest::prelude::*;

fn compile(yaml: &str) -> CompiledFilter {
    let f: Filter = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    f.compile().unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn run(yaml: &str, tags: &[&str]) -> Vec<String> {
    compile(yaml).apply(tags.iter().copied())
}

fn compile_err(yaml: &str) -> FilterError {
    let f: Filter = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    match f.compile() {
        Ok(c) => panic!("{yaml} compiled: {c:?}"),
        Err(e) => e,
    }
}

fn check(constraint: &str, version: &str) -> bool {
    let c = SemverConstraint::parse(constraint)
        .unwrap_or_else(|e| panic!("constraint {constraint:?}: {e}"));
    let v = masterminds_new_version(version)
        .unwrap_or_else(|| panic!("version {version:?} does not parse"));
    c.check(&v)
}

#[test]
fn flux_default_is_reverse_byte_order_with_its_wart() {
    let tags = ["v0.3.9", "v0.3.10", "v0.3.8", "latest", "v0.3.9"];
    assert_eq!(
        run("{}", &tags),
        ["v0.3.9", "v0.3.9", "v0.3.8", "v0.3.10", "latest"]
    );
    // flux-operator filters_test.go cases.
    let tags = ["v1.0.0", "v1.1.0", "v2.0.0"];
    assert_eq!(run("{}", &tags), ["v2.0.0", "v1.1.0", "v1.0.0"]);
    assert_eq!(run(r"includeTag: '^v1\.'", &tags), ["v1.1.0", "v1.0.0"]);
    assert_eq!(run(r"excludeTag: '^v2\.'", &tags), ["v1.1.0", "v1.0.0"]);
    let tags = ["2024.01.01", "2024.01.02", "2024.01.03"];
    assert_eq!(run("limit: 1", &tags), ["2024.01.03"]);
}

#[test]
fn include_and_exclude_are_unanchored() {
    let tags = ["v1.0.0", "v1.1.0", "v2.0.0", "v1.2.0", "rubbish"];
    assert_eq!(
        run(r"{includeTag: '1\.', excludeTag: '0\.0$'}", &tags),
        ["v1.2.0", "v1.1.0"]
    );
    // An empty expression is "not set", as Go's omitempty.
    assert_eq!(run("{includeTag: '', excludeTag: ''}", &tags).len(), 5);
}

#[test]
fn flux_semver_filters_and_sorts_newest_first() {
    let tags = ["v1.0.0", "v1.1.0", "v2.0.0", "v1.2.0", "rubbish", "garbage"];
    assert_eq!(
        run("semver: '>= 1.0.0 < 2.0.0'", &tags),
        ["v1.2.0", "v1.1.0", "v1.0.0"]
    );
    assert_eq!(
        run(
            r"{includeTag: '^v1\.', excludeTag: '^v1\.0\.0$', semver: '>= 1.0.0 < 2.0.0', limit: 2}",
            &tags
        ),
        ["v1.2.0", "v1.1.0"]
    );
    // fluxcd/pkg version.Sort's test: stable among equal versions.
    let tags = [
        "v1.2.0",
        "v1.2.3",
        "v1.3.0",
        "1.2.4",
        "v1.1.0",
        "something-invalid",
        "v1.2.4",
        "another-invalid",
        "1.2.4",
    ];
    assert_eq!(
        run("semver: '>= 1.2.0, < 1.3.0'", &tags),
        ["1.2.4", "v1.2.4", "1.2.4", "v1.2.3", "v1.2.0"]
    );
    // Semver ordering fixes the wart.
    assert_eq!(
        run("semver: '*'", &["v0.3.9", "v0.3.10", "v0.3.8"]),
        ["v0.3.10", "v0.3.9", "v0.3.8"]
    );
}

#[test]
fn flux_parse_version_rules() {
    // fluxcd/pkg version_test.go TestParseVersion.
    for (tag, ok) in [
        ("v1.2.3", true),
        ("v2025.07.03", true),
        ("v1.0", false),
        ("v1", false),
        ("v1.2.beta", false),
        ("v1.2-5", false),
        ("v1.2-beta5", false),
        ("\nv1.2", false),
        ("v1.2.0-x.Y.0+metadata", true),
        ("v1.2.0-x.Y.0+metadata-width-hypen", true),
        ("v1.2.3-rc1-with-hypen", true),
        ("v1.2.3.4", false),
        // Two dots anywhere, then NewVersion's coercion: 1.2.0-beta.5.
        ("v1.2-beta.5", true),
        ("V1.2.3", false),
        ("1.2.3-01", false),
        ("1.2.3-rc.0a1", true),
        ("1.2.3+", false),
        ("1.2.3-", false),
        ("99999999999999999999.0.0", false),
        ("", false),
    ] {
        assert_eq!(parse_flux_version(tag).is_some(), ok, "{tag:?}");
    }
    let v = parse_flux_version("v2025.07.03").unwrap();
    assert_eq!((v.major, v.minor, v.patch), (2025, 7, 3));
    let v = parse_flux_version("v1.2-beta.5").unwrap();
    assert_eq!(v.to_string(), "1.2.0-beta.5");
}

#[test]
fn masterminds_operators() {
    // Masterminds/semver v3 constraints_test.go (TestConstraintsCheck).
    for (c, v, want) in [
        ("=2.0.0", "1.2.3", false),
        ("=2.0.0", "2.0.0", true),
        ("=2.0", "2.0.1", true),
        ("= 2.0", "1.2.3", false),
        ("4.1", "4.1.0", true),
        ("2.1", "2.2.1", false),
        ("v1.2", "1.2.9", true),
        ("!=4.1.0", "4.1.0", false),
        ("!=4.1.0", "4.1.1", true),
        ("!=4.1", "4.1.0", false),
        ("!=4.1", "4.1.1", false),
        ("!=4.1", "5.1.0", true),
        ("!=4.1-alpha", "4.1.0", true),
        ("!=4.1-alpha", "4.1.0-alpha", false),
        ("!=4.x", "4.1.0", false),
        ("!=4.x", "5.1.0", true),
        ("!=4.1.x", "4.2.0", true),
        ("!=4.2.x", "4.2.3", false),
        (">1.1", "4.1.0", true),
        (">1.1", "1.1.0", false),
        (">11", "11.1.0", false),
        (">11.1", "11.1.1", false),
        (">11.1", "11.2.1", true),
        (">0", "0.0.1-alpha", false),
        (">0.0.0-0", "0.0.0-alpha", true),
        (">1.2.3-alpha.1", "1.3.3-alpha.2", true),
        ("<11", "11.1.0", false),
        ("<1.1", "0.1.0", true),
        ("<1.1", "1.1.0", false),
        ("<1.x", "0.1.1", true),
        ("<1.x", "1.1.1", false),
        ("<1.1.x", "1.0.500", true),
        ("<0-z", "0.0.0-alpha", true),
        (">=1.1", "1.1.0", true),
        (">=1.1", "0.0.9", false),
        (">=1.1", "4.1.0-beta", false),
        ("=> 1.2", "1.2.0", true),
        (">=0-0", "0.0.1-alpha", true),
        ("<=1.1", "1.1.1", true),
        ("<=1.1", "1.2.3", false),
        ("<=1.x", "1.9.0", true),
        ("<=2.x", "3.0.0", false),
        ("<=11", "11.2.3", true),
        ("=< 1.2", "1.2.9", true),
        ("<=1.1-a", "0.1.0-alpha", true),
        ("~1.2.3", "1.2.4", true),
        ("~1.2.3", "1.3.4", false),
        ("~1.2.3", "1.2.2", false),
        ("~1", "1.3.5", true),
        ("~1", "2.1.1", false),
        ("~>1.2", "1.2.9", true),
        ("~>1.2", "1.3.0", false),
        ("~*", "2.1.1", true),
        ("~0.0.0", "1.2.3", true),
        ("~1.2.3-beta.2", "1.2.4-beta.2", true),
        ("~1.2.3-beta.2", "1.3.4-beta.2", false),
        ("^1.2.3", "1.8.9", true),
        ("^1.2.3", "2.8.9", false),
        ("^1.2.3", "1.2.1", false),
        ("^1.x", "1.1.1", true),
        ("^1.x", "2.1.1", false),
        ("^0.2.3", "0.2.5", true),
        ("^0.2.3", "0.3.0", false),
        ("^0.2", "0.2.5", true),
        ("^0.2", "0.5.6", false),
        ("^0.0.3", "0.0.3", true),
        ("^0.0.3", "0.0.4", false),
        ("^0.0", "0.0.3", true),
        ("^0.0", "0.1.4", false),
        ("^0", "0.2.3", true),
        ("^0", "1.1.4", false),
        ("^0.0.0", "1.2.3", false),
        ("^1.2.0-alpha.2", "1.2.0-alpha.1", false),
        ("^1.1.2-alpha", "1.2.1-beta1", true),
    ] {
        assert_eq!(check(c, v), want, "{c:?} against {v:?}");
    }
}

#[test]
fn masterminds_wildcards_partials_and_x() {
    for (c, v, want) in [
        ("*", "4.5.6", true),
        ("*", "1.2.3-alpha.1", false),
        ("*-0", "1.2.3-alpha.1", true),
        ("x", "0.0.1", true),
        ("X", "7.0.0", true),
        ("2.*", "2.1.1", true),
        ("2.*", "3.4.5", false),
        ("2.x", "2.9.9", true),
        ("2.1.*", "2.1.1", true),
        ("2.1.*", "2.2.1", false),
        ("2.1.X", "2.1.7", true),
        ("1.x", "1.4", true),
        ("2", "2.1.1", true),
        ("2", "3.4.5", false),
        ("0.x.x", "1.2.3", false),
        ("0.0.x", "1.2.3", false),
    ] {
        assert_eq!(check(c, v), want, "{c:?} against {v:?}");
    }
}

#[test]
fn masterminds_and_or_and_hyphen_ranges() {
    for (c, v, want) in [
        (">1.1, <2", "1.2.1", true),
        (">1.1, <2", "1.1.1", false),
        (">1.1 <2", "1.2.1", true),
        (">1.1    <3", "4.3.2", false),
        (">=1.1, <2, !=1.2.3", "1.2.3", false),
        (">=1.1 <2 !=1.2.3 || > 3", "4.1.2", true),
        (">=1.1 <2 !=1.2.3 || > 3", "3.1.2", false),
        (">=1.1 <2 !=1.2.3 || >= 3", "3.0.0", true),
        (">= 1.1, <2, !=1.2.3 || > 3", "1.2.3", false),
        ("^1 || ^3", "3.4.0", true),
        ("^1 || ^3", "2.4.0", false),
        ("1.1 - 2", "1.1.1", true),
        ("1.2 - 1.4.5", "1.4.5", true),
        ("1.2 - 1.4.5", "1.4.6", false),
        ("1.2 - 1.4.5", "1.1.9", false),
        ("1.5.0 - 4.5", "3.7.0", true),
        ("1.1 - 3", "4.3.2", false),
        ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", true),
        ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", true),
        // Without spaces around '-' it is a pre-release, not a range.
        ("1.1-3", "4.3.2", false),
    ] {
        assert_eq!(check(c, v), want, "{c:?} against {v:?}");
    }
}

#[test]
fn masterminds_prerelease_rule_is_per_or_group() {
    // A pre-release passes a group only if one of that group's
    // comparators has a pre-release (v3.3+ rule), then compares normally.
    assert!(check(">=1.0.0-0 <2.0.0", "1.5.0-beta.1"));
    assert!(!check(">=1.0.0 <2.0.0", "1.5.0-beta.1"));
    assert!(!check(">=1.0.0 <2.0.0 || >=3.0.0-0", "1.5.0-beta.1"));
    assert!(check(">=1.0.0 <2.0.0 || >=1.0.0-0", "1.5.0-beta.1"));
    assert!(check("~1.1-alpha", "1.1.1-beta"));
    assert!(!check("~1.1.1-beta", "1.1.1-alpha"));
    assert!(check("~1.1.1-beta", "1.1.1"));
    // Through the filter: stable >=0.0.0 keeps release candidates out.
    let tags = ["v1.2.3", "v1.3.0-rc.1", "v1.2.4-rc.abc"];
    assert_eq!(run("semver: '>=0.0.0'", &tags), ["v1.2.3"]);
    assert_eq!(
        run("semver: '>=0.0.0-0'", &tags),
        ["v1.3.0-rc.1", "v1.2.4-rc.abc", "v1.2.3"]
    );
}

#[test]
fn masterminds_constraint_syntax_errors() {
    // Masterminds TestNewConstraint.
    for (c, ok) in [
        (">= 1.1", true),
        (">40.50.60, < 50.70", true),
        ("v2.3.5-20161202202307-sha.e8fc5e5", true),
        (">= 1.2.3 < 2.0 || => 3.0 < 4", true),
        ("3 - 4 || => 3.0, < 4", true),
        ("12.3.34 ~1.2.3", true),
        ("~>1", true),
        (">= bar", false),
        ("BAR >= 1.2.3", false),
        ("foo", false),
        ("12.3.4.1234", false),
        ("12.3.34~ 1.2.3", false),
        (">=1.0.0<2.0.0", false),
        ("1.2.3-01", false),
        ("1x.2", false),
        ("", false),
        ("1 ||", false),
    ] {
        assert_eq!(SemverConstraint::parse(c).is_ok(), ok, "{c:?}");
    }
}

#[test]
fn seed_003_filters() {
    let tags = [
        "v1.2.3",
        "v1.2.4-rc.0a1b2c",
        "v1.2.4-rc.ffee01",
        "v1.2.10",
        "v0.9.0",
        "production-latest",
        "production-latest-old",
        "v1.3.0-rc.abc123",
        "latest",
    ];
    // develop: release candidates, as includeTag (Flux: reverse bytes).
    assert_eq!(
        run(
            r"{includeTag: '^v\d+\.\d+\.\d+-rc\.[a-f0-9]+$', limit: 1}",
            &tags
        ),
        ["v1.3.0-rc.abc123"]
    );
    // ... and as pattern ordered by semver.
    assert_eq!(
        run(
            r"{pattern: '^v\d+\.\d+\.\d+-rc\.[a-f0-9]+$', order: {by: semver}}",
            &tags
        ),
        ["v1.3.0-rc.abc123", "v1.2.4-rc.ffee01", "v1.2.4-rc.0a1b2c"]
    );
    // staging: stable semver, newest first (v1.2.10 > v1.2.3).
    assert_eq!(run("{semver: '>=0.0.0', limit: 1}", &tags), ["v1.2.10"]);
    assert_eq!(
        run(
            r"{includeTag: '^v[0-9]+\.[0-9]+\.[0-9]+$', order: {by: semver}}",
            &tags
        ),
        ["v1.2.10", "v1.2.3", "v0.9.0"]
    );
    // production: one fixed tag.
    assert_eq!(
        run(
            "includeTag: production-latest",
            &["v1", "production-latest"]
        ),
        ["production-latest"]
    );
    assert_eq!(
        run("includeTag: '^production-latest$'", &tags),
        ["production-latest"]
    );
}

#[test]
fn extract_named_and_numbered_groups() {
    let tags = ["main-abc-100", "main-def-20", "feat-xyz-300", "main-bad"];
    // Numbered group, numerical desc: largest build first.
    assert_eq!(
        run(
            r"{pattern: '^main-[a-z]+-(\d+)$', extract: '$1', order: {by: numerical}}",
            &tags
        ),
        ["main-abc-100", "main-def-20"]
    );
    // Named group with braces, ascending.
    assert_eq!(
        run(
            r"{pattern: '^(?P<branch>[a-z]+)-[a-z]+-(?P<ts>\d+)$', extract: '${ts}', order: {by: numerical, direction: asc}}",
            &tags
        ),
        ["main-def-20", "main-abc-100", "feat-xyz-300"]
    );
    // $name, literal text and $$.
    let f = compile(r"{pattern: '^v(?P<ver>\d+\.\d+)$', extract: '$$${ver}.0-x$ver'}");
    let Some(Template { pieces }) = &f.extract else {
        panic!("no template")
    };
    let caps = f.pattern.as_ref().unwrap().captures("v1.2").unwrap();
    assert_eq!(f.extract.as_ref().unwrap().expand(&caps), "$1.2.0-x1.2");
    assert!(pieces.len() >= 3);
    // The extracted value is compared, the tag returned.
    assert_eq!(
        run(
            r"{pattern: '^app-(?P<v>\d+\.\d+\.\d+)$', extract: 'v$v', semver: '^1', order: {by: semver}}",
            &["app-1.2.0", "app-1.10.0", "app-2.0.0", "app-x"]
        ),
        ["app-1.10.0", "app-1.2.0"]
    );
    // Pattern without extract: the tag is the value; non-matching dropped.
    assert_eq!(run(r"pattern: '^v\d'", &["v1", "x1", "v2"]), ["v2", "v1"]);
}

#[test]
fn go_expand_rules() {
    let re = Regex::new(r"^(?P<a>x)?(?P<b>\d+)(?P<b1>y)?$").unwrap();
    let expand = |t: &str, s: &str| {
        let tmpl = Template::parse(t, &re).unwrap_or_else(|e| panic!("{t}: {e}"));
        tmpl.expand(&re.captures(s).unwrap())
    };
    assert_eq!(expand("$b", "x12"), "12");
    assert_eq!(expand("${b}1", "x12"), "121");
    assert_eq!(expand("$b1", "12y"), "y"); // $b1 is ${b1}, not ${b}1
    assert_eq!(expand("$2-$1", "x12"), "12-x");
    assert_eq!(expand("[$a]", "12"), "[]"); // a group that did not take part
    assert_eq!(expand("$$b", "12"), "$b");
    assert_eq!(expand("${b", "12"), "${b"); // malformed: literal
    assert_eq!(expand("$-", "12"), "$-");
    assert_eq!(expand("cost $", "12"), "cost $");
    // Go reads $01 as a name, and $1x as ${1x}: no such groups here.
    for bad in ["$01", "$1x", "$4", "$nope", "${nope}"] {
        let e = Template::parse(bad, &re)
            .err()
            .unwrap_or_else(|| panic!("{bad}"));
        assert_eq!(e.field(), "extract", "{bad}");
    }
}

#[test]
fn alphabetical_and_numerical_directions() {
    let tags = ["b", "a10", "c", "a9"];
    assert_eq!(
        run("order: {by: alphabetical}", &tags),
        ["c", "b", "a9", "a10"]
    );
    assert_eq!(
        run("order: {by: alphabetical, direction: asc}", &tags),
        ["a10", "a9", "b", "c"]
    );
    let tags = [
        "10", "9", "1e2", "-3.5", "x", "0x10p0", "1_000", "NaN", "1e400",
    ];
    assert_eq!(
        run("order: {by: numerical}", &tags),
        ["1_000", "1e2", "0x10p0", "10", "9", "-3.5", "NaN"]
    );
    assert_eq!(
        run("order: {by: numerical, direction: asc}", &tags),
        ["NaN", "-3.5", "9", "10", "0x10p0", "1e2", "1_000"]
    );
    // Semver ascending: oldest first; unparsable dropped.
    assert_eq!(
        run(
            "order: {by: semver, direction: asc}",
            &["v0.3.10", "v0.3.9", "junk", "v0.3.10-rc.1"]
        ),
        ["v0.3.9", "v0.3.10-rc.1", "v0.3.10"]
    );
}

#[test]
fn go_parse_float_matches_strconv() {
    // Go strconv atof_test.go cases.
    for (s, want) in [
        ("1", Some(1.0)),
        ("+1", Some(1.0)),
        ("-0.5", Some(-0.5)),
        (".5", Some(0.5)),
        ("5.", Some(5.0)),
        ("1e23", Some(1e23)),
        ("1E-2", Some(0.01)),
        ("1_23.50_0_0e+1_2", Some(1.235e14)),
        ("0x_1_2.3_4_5p+1_2", Some(74565.0)),
        ("0x1p-2", Some(0.25)),
        ("0x1.8p1", Some(3.0)),
        ("0X1P0", Some(1.0)),
        ("0x1p-1074", Some(5e-324)),
        ("0x1p-1075", Some(0.0)),
        ("0x1.8p-1075", Some(5e-324)),
        ("0x1.fffffffffffffp1023", Some(f64::MAX)),
        ("1.7976931348623157e308", Some(f64::MAX)),
        ("Infinity", Some(f64::INFINITY)),
        ("-inf", Some(f64::NEG_INFINITY)),
        ("+INF", Some(f64::INFINITY)),
        ("1e-400", Some(0.0)),
        ("1e400", None),
        ("0x1p1024", None),
        ("1.7976931348623159e308", None),
        ("infin", None),
        ("infx", None),
        ("+nan", None),
        ("-nan", None),
        ("nanx", None),
        ("0x1", None),
        ("0x", None),
        ("0x1e2", None),
        ("1x", None),
        ("1.1.", None),
        (".", None),
        ("", None),
        ("-", None),
        ("e5", None),
        ("1e", None),
        ("1e_5", None),
        ("_123", None),
        ("1__23", None),
        ("123_", None),
        ("123_.5", None),
        ("123._5", None),
        ("123.5e+12_", None),
        ("0x12.345p+1__2", None),
    ] {
        let got = go_parse_float(s);
        assert_eq!(got, want, "{s:?}");
    }
    assert!(go_parse_float("nan").is_some_and(f64::is_nan));
    assert!(go_parse_float("NaN").is_some_and(f64::is_nan));
}

#[test]
fn limit_default_zero_and_max() {
    let tags: Vec<String> = (0..250).map(|i| format!("t{i:03}")).collect();
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let out = run("{}", &refs);
    assert_eq!(out.len(), DEFAULT_LIMIT);
    assert_eq!(out[0], "t249");
    assert_eq!(run("limit: 0", &refs).len(), DEFAULT_LIMIT);
    assert_eq!(run("limit: 3", &refs), ["t249", "t248", "t247"]);
    assert_eq!(run("limit: 10000", &refs).len(), 250);
    assert_eq!(compile("limit: 10000").limit(), MAX_LIMIT);
    let e = compile_err("limit: 20000");
    assert_eq!(e.field(), "limit");
    assert_eq!(e.to_string(), "limit: 20000 is over the maximum 10000");
}

#[test]
fn compile_errors_name_the_field() {
    for (yaml, field, needle) in [
        ("includeTag: '('", "includeTag", "invalid regex \"(\""),
        ("excludeTag: '[a-'", "excludeTag", "invalid regex"),
        ("pattern: '(?P<x>'", "pattern", "invalid regex"),
        ("semver: 'latest'", "semver", "not a semver constraint"),
        ("semver: '>=1 <<2'", "semver", "improper constraint"),
        ("limit: 10001", "limit", "over the maximum 10000"),
        ("extract: '$1'", "extract", "needs pattern"),
        ("{pattern: '(a)', extract: '$2'}", "extract", "group 2"),
        ("{pattern: '(?P<a>a)', extract: '$b'}", "extract", "\"b\""),
        (
            "{semver: '*', order: {by: numerical}}",
            "order",
            "numerical ordering",
        ),
    ] {
        let e = compile_err(yaml);
        assert_eq!(e.field(), field, "{yaml}: {e}");
        assert!(e.to_string().starts_with(&format!("{field}: ")), "{e}");
        assert!(e.message().contains(needle), "{yaml}: {e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
}

#[test]
fn unknown_fields_and_values_are_rejected_by_serde() {
    let e = serde_yaml_ng::from_str::<Filter>("colour: red").unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
    let e = serde_json::from_str::<Filter>(r#"{"include_tag": "x"}"#).unwrap_err();
    assert!(e.to_string().contains("include_tag"), "{e}");
    let e = serde_yaml_ng::from_str::<Filter>("order: {by: size}").unwrap_err();
    assert!(e.to_string().contains("size"), "{e}");
    let e = serde_yaml_ng::from_str::<Filter>("order: {by: semver, way: up}").unwrap_err();
    assert!(e.to_string().contains("way"), "{e}");
    let e = serde_yaml_ng::from_str::<Filter>("order: {direction: asc}").unwrap_err();
    assert!(e.to_string().contains("by"), "{e}");
    // And the camelCase names round-trip.
    let f: Filter = serde_yaml_ng::from_str(
        "{includeTag: a, excludeTag: b, semver: '*', limit: 5, pattern: '(c)', extract: '$1', order: {by: alphabetical}}",
    )
    .unwrap();
    assert_eq!(f.include_tag.as_deref(), Some("a"));
    assert_eq!(f.order.as_ref().map(|o| o.direction), Some(Direction::Desc));
    let back: Filter = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
    assert_eq!(back, f);
}

#[test]
fn adler32_ids() {
    assert_eq!(adler32_id("6.0.4"), "48955639");
    assert_eq!(adler32_id(""), "1");
    // A 128-byte tag (the OCI maximum), and 13000 bytes (past zlib's
    // 5552-byte reduction block); expected values from zlib.adler32.
    assert_eq!(adler32_id(&"0123456789abcdef".repeat(8)), "2807046929");
    assert_eq!(adler32_id(&"registry-tag_".repeat(1000)), "2043184917");
}

fn tag_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "v?[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}(-rc\\.[0-9a-f]{1,3})?",
        "[a-z0-9._-]{1,10}",
        Just("v1.0.0".to_owned()),
    ]
}

proptest! {
    #[test]
    fn apply_is_a_bounded_sorted_sub_multiset(
        tags in prop::collection::vec(tag_strategy(), 0..60),
        limit in 1usize..30,
        by in prop_oneof![Just("semver"), Just("alphabetical"), Just("numerical")],
        semver_desc in any::<bool>(),
    ) {
        let by = if semver_desc { "semver" } else { by };
        let f = Filter {
            limit: Some(limit),
            order: Some(Order {
                by: serde_yaml_ng::from_str(by).unwrap(),
                direction: Direction::Desc,
            }),
            ..Filter::default()
        };
        let out = f.compile().unwrap().apply(tags.iter().map(String::as_str));
        prop_assert!(out.len() <= limit);
        let mut pool = tags.clone();
        for t in &out {
            let i = pool.iter().position(|p| p == t);
            prop_assert!(i.is_some(), "{t} not in the input (or more often than there)");
            pool.swap_remove(i.unwrap());
        }
        if by == "semver" {
            let versions: Vec<Version> = out
                .iter()
                .map(|t| parse_flux_version(t).unwrap())
                .collect();
            for w in versions.windows(2) {
                prop_assert!(w[0].cmp_precedence(&w[1]) != Ordering::Less, "{out:?}");
            }
            let parsable = tags.iter().filter(|t| parse_flux_version(t).is_some()).count();
            prop_assert_eq!(out.len(), parsable.min(limit));
        }
        // The default filter keeps everything up to the limit, sorted
        // in reverse byte order.
        let d = Filter { limit: Some(limit), ..Filter::default() }
            .compile()
            .unwrap()
            .apply(tags.iter().map(String::as_str));
        prop_assert_eq!(d.len(), tags.len().min(limit));
        prop_assert!(d.windows(2).all(|w| w[0] >= w[1]));
    }
}
