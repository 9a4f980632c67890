//! `when` as Argo's workflow controller evaluates it: with govaluate
//! (github.com/Knetic/govaluate v3.0.1-0.20250325060307-7625b7f8c03d, the
//! version argo-workflows v4.0.5 pins), after Argo's own twist in
//! workflow/controller/steps.go `shouldExecute`: the expression is parsed,
//! every bare word (a govaluate VARIABLE) becomes a STRING, the tokens are
//! checked again, and the result must be a bool.
//!
//! Followed from govaluate:
//! - parsing.go `readToken`: numbers (digits and `.`, `0x` hex) are
//!   float64; `'…'` and `"…"` are strings (either quote ends one, `\`
//!   escapes); a word of letters, digits, `_` and `.` is a VARIABLE, `true`
//!   and `false` BOOLEAN, `in` a comparator, and a word with a `.` an
//!   ACCESSOR (an error when a part after a dot starts lower-case); `[…]` is
//!   a VARIABLE; any other run of symbol characters is an operator, or
//!   "Invalid token".
//! - lexerState.go `checkExpressionSyntax`: which token may follow which.
//!   So `!Succeeded` is refused once `Succeeded` is a STRING (a prefix takes
//!   no string), and ` == x` (an empty operand) is refused.
//! - stagePlanner.go: precedence `,` < ternary < `||` < `&&` < comparators
//!   < bitwise < shifts < `+ -` < `* / %` < `**` < prefixes; evaluationStage.go:
//!   `==`/`!=` compare type and value (`"1" != 1`), `<`-style comparators take
//!   two numbers or two strings, `+` concatenates when a side is a string,
//!   `=~`/`!~` take a string and a regex, `in` a list, `&&`/`||` short-circuit;
//!   the type errors are govaluate's sentences.
//!
//! Not evaluated (an error says so): the ternary and coalescing operators,
//! bitwise operators, and date strings (govaluate turns a quoted date into a
//! time; here it stays a string).

use std::fmt;

/// Why a `when` cannot be evaluated: Argo makes such a node an Error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError(message.into()))
}

/// A govaluate value.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Num(f64),
    Str(String),
    Bool(bool),
    List(Vec<Val>),
}

impl fmt::Display for Val {
    /// As Go's `%v` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(n) if n.fract() == 0.0 && n.abs() < 1e21 => write!(f, "{n:.0}"),
            Self::Num(n) => write!(f, "{n}"),
            Self::Str(s) => f.write_str(s),
            Self::Bool(b) => write!(f, "{b}"),
            Self::List(items) => {
                let shown: Vec<String> = items.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", shown.join(" "))
            }
        }
    }
}

/// govaluate's token kinds (TokenKind.go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unknown,
    Prefix,
    Numeric,
    Boolean,
    Str,
    Variable,
    Accessor,
    Comparator,
    LogicalOp,
    Modifier,
    Clause,
    ClauseClose,
    Ternary,
    Separator,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::Prefix => "PREFIX",
            Self::Numeric => "NUMERIC",
            Self::Boolean => "BOOLEAN",
            Self::Str => "STRING",
            Self::Variable => "VARIABLE",
            Self::Accessor => "ACCESSOR",
            Self::Comparator => "COMPARATOR",
            Self::LogicalOp => "LOGICALOP",
            Self::Modifier => "MODIFIER",
            Self::Clause => "CLAUSE",
            Self::ClauseClose => "CLAUSE_CLOSE",
            Self::Ternary => "TERNARY",
            Self::Separator => "SEPARATOR",
        }
    }

    /// lexerState.go: whether a token of this kind may end the expression,
    /// and which kinds may follow it.
    #[rustfmt::skip]
    fn state(self) -> (bool, &'static [Kind]) {
        use Kind::{
            Accessor, Boolean, Clause, ClauseClose, Comparator, LogicalOp, Modifier, Numeric,
            Prefix, Separator, Str, Ternary, Variable,
        };
        match self {
            Self::Unknown => (false, &[Prefix, Numeric, Boolean, Variable, Accessor, Str, Clause]),
            Self::Clause => (false, &[Prefix, Numeric, Boolean, Variable, Accessor, Str, Clause, ClauseClose]),
            Self::ClauseClose => (true, &[Comparator, Modifier, Numeric, Boolean, Variable, Str, Clause,
                ClauseClose, LogicalOp, Ternary, Separator]),
            Self::Numeric | Self::Boolean | Self::Str | Self::Variable => (true, &[Modifier, Comparator,
                LogicalOp, ClauseClose, Ternary, Separator]),
            Self::Accessor => (true, &[Clause, Modifier, Comparator, LogicalOp, ClauseClose, Ternary, Separator]),
            Self::Modifier => (false, &[Prefix, Numeric, Variable, Accessor, Str, Boolean, Clause, ClauseClose]),
            Self::Comparator | Self::LogicalOp => (false, &[Prefix, Numeric, Boolean, Variable, Accessor, Str,
                Clause, ClauseClose]),
            Self::Prefix => (false, &[Numeric, Boolean, Variable, Accessor, Clause, ClauseClose]),
            Self::Ternary => (false, &[Prefix, Numeric, Boolean, Str, Variable, Accessor, Clause, Separator]),
            Self::Separator => (false, &[Prefix, Numeric, Boolean, Str, Variable, Accessor, Clause]),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    kind: Kind,
    text: String,
    value: Option<Val>,
}

const PREFIXES: [&str; 3] = ["-", "!", "~"];
const MODIFIERS: [&str; 11] = ["+", "-", "*", "/", "%", "**", "&", "|", "^", ">>", "<<"];
const LOGICALS: [&str; 2] = ["&&", "||"];
const COMPARATORS: [&str; 9] = ["==", "!=", ">", ">=", "<", "<=", "=~", "!~", "in"];
const TERNARIES: [&str; 3] = ["?", ":", "??"];

fn is_numeric(c: char) -> bool {
    c.is_ascii_digit() || c == '.'
}

fn is_variable_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.'
}

fn is_quote(c: char) -> bool {
    c == '\'' || c == '"'
}

fn is_symbol_char(c: char) -> bool {
    !(c.is_numeric() || c.is_alphabetic() || matches!(c, '(' | ')' | '[' | ']') || is_quote(c))
}

/// Reads while `keep` holds and no whitespace follows read text
/// (parsing.go `readUntilFalse` with breakWhitespace).
fn read_while(chars: &[char], at: &mut usize, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::new();
    while let Some(&c) = chars.get(*at) {
        if c.is_whitespace() || !keep(c) {
            break;
        }
        out.push(c);
        *at += 1;
    }
    out
}

/// Reads up to (not including) a character `stop` accepts, `\` escaping;
/// `None` when the text ends first.
fn read_until(chars: &[char], at: &mut usize, stop: impl Fn(char) -> bool) -> Option<String> {
    let mut out = String::new();
    while let Some(&c) = chars.get(*at) {
        *at += 1;
        if c == '\\' {
            if let Some(&next) = chars.get(*at) {
                out.push(next);
                *at += 1;
            }
            continue;
        }
        if stop(c) {
            return Some(out);
        }
        out.push(c);
    }
    None
}

fn word_token(word: String) -> Result<Token, EvalError> {
    let (kind, value) = match word.as_str() {
        "true" => (Kind::Boolean, Some(Val::Bool(true))),
        "false" => (Kind::Boolean, Some(Val::Bool(false))),
        "in" | "IN" => {
            return Ok(Token {
                kind: Kind::Comparator,
                text: "in".into(),
                value: None,
            });
        }
        w if w.find('.').is_some_and(|i| i > 0) => {
            if w.ends_with('.') {
                return fail(format!("Hanging accessor on token '{w}'"));
            }
            for part in w.split('.').skip(1) {
                if part.chars().next().is_some_and(char::is_lowercase) {
                    return fail(format!(
                        "Unable to access unexported field '{part}' in token '{w}'"
                    ));
                }
            }
            (Kind::Accessor, None)
        }
        _ => (Kind::Variable, None),
    };
    Ok(Token {
        kind,
        text: word,
        value,
    })
}

/// A numeric constant (parsing.go: digits and `.`, or `0x` and hex digits).
fn numeric(chars: &[char], at: &mut usize) -> Result<Token, EvalError> {
    if chars.get(*at) == Some(&'0') && chars.get(*at + 1) == Some(&'x') {
        *at += 2;
        let hex = read_while(chars, at, |c| c.is_ascii_hexdigit());
        let n = u64::from_str_radix(&hex, 16)
            .map_err(|_| EvalError(format!("Unable to parse hex value '{hex}' to uint64\n")))?;
        #[allow(clippy::cast_precision_loss, reason = "govaluate reads it as float64")]
        let n = n as f64;
        return Ok(Token {
            kind: Kind::Numeric,
            text: format!("0x{hex}"),
            value: Some(Val::Num(n)),
        });
    }
    let text = read_while(chars, at, is_numeric);
    let n: f64 = text.parse().map_err(|_| {
        EvalError(format!(
            "Unable to parse numeric value '{text}' to float64\n"
        ))
    })?;
    Ok(Token {
        kind: Kind::Numeric,
        text,
        value: Some(Val::Num(n)),
    })
}

/// An operator: a prefix where one may come, else a modifier, logical,
/// comparator or ternary symbol; anything else is an invalid token.
fn symbol(chars: &[char], at: &mut usize, previous: Kind) -> Result<Token, EvalError> {
    let symbol = read_while(chars, at, is_symbol_char);
    if symbol.is_empty() {
        let c = chars.get(*at).copied().unwrap_or(' ');
        return fail(format!("Invalid token: '{c}'"));
    }
    let s = symbol.as_str();
    let kind = if previous.state().1.contains(&Kind::Prefix) && PREFIXES.contains(&s) {
        Kind::Prefix
    } else if MODIFIERS.contains(&s) {
        Kind::Modifier
    } else if LOGICALS.contains(&s) {
        Kind::LogicalOp
    } else if COMPARATORS.contains(&s) {
        Kind::Comparator
    } else if TERNARIES.contains(&s) {
        Kind::Ternary
    } else {
        return fail(format!("Invalid token: '{symbol}'"));
    };
    Ok(Token {
        kind,
        text: symbol,
        value: None,
    })
}

/// parsing.go `parseTokens`.
fn tokens(expression: &str) -> Result<Vec<Token>, EvalError> {
    let chars: Vec<char> = expression.chars().collect();
    let mut at = 0;
    let mut out: Vec<Token> = Vec::new();
    while let Some(&c) = chars.get(at) {
        if c.is_whitespace() {
            at += 1;
            continue;
        }
        let previous = out.last().map_or(Kind::Unknown, |t| t.kind);
        let token = if is_numeric(c) {
            numeric(&chars, &mut at)?
        } else if c == ',' {
            at += 1;
            Token {
                kind: Kind::Separator,
                text: ",".into(),
                value: None,
            }
        } else if c == '[' {
            at += 1;
            let name = read_until(&chars, &mut at, |c| c == ']')
                .ok_or_else(|| EvalError("Unclosed parameter bracket".into()))?;
            Token {
                kind: Kind::Variable,
                text: name,
                value: None,
            }
        } else if c.is_alphabetic() {
            word_token(read_while(&chars, &mut at, is_variable_char))?
        } else if is_quote(c) {
            at += 1;
            let text = read_until(&chars, &mut at, is_quote)
                .ok_or_else(|| EvalError("Unclosed string literal".into()))?;
            Token {
                kind: Kind::Str,
                value: Some(Val::Str(text.clone())),
                text,
            }
        } else if c == '(' || c == ')' {
            at += 1;
            Token {
                kind: if c == '(' {
                    Kind::Clause
                } else {
                    Kind::ClauseClose
                },
                text: c.to_string(),
                value: None,
            }
        } else {
            symbol(&chars, &mut at, previous)?
        };
        out.push(token);
    }
    balanced(&out)?;
    Ok(out)
}

/// parsing.go `checkBalance`.
fn balanced(tokens: &[Token]) -> Result<(), EvalError> {
    let mut depth: i64 = 0;
    for t in tokens {
        match t.kind {
            Kind::Clause => depth += 1,
            Kind::ClauseClose => depth -= 1,
            _ => {}
        }
    }
    if depth == 0 {
        Ok(())
    } else {
        fail("Unbalanced parenthesis")
    }
}

/// lexerState.go `checkExpressionSyntax`.
fn check_syntax(tokens: &[Token]) -> Result<(), EvalError> {
    let mut state = Kind::Unknown;
    let mut last: Option<&Token> = None;
    for t in tokens {
        if !state.state().1.contains(&t.kind) {
            if let Some(l) = last
                && l.kind == Kind::Variable
                && t.kind == Kind::Clause
            {
                return fail(format!("Undefined function {}", l.text));
            }
            let before = last.map_or("<nil>".to_owned(), |l| l.text.clone());
            return fail(format!(
                "Cannot transition token types from {} [{before}] to {} [{}]",
                state.name(),
                t.kind.name(),
                t.text
            ));
        }
        state = t.kind;
        last = Some(t);
    }
    if state.state().0 {
        Ok(())
    } else {
        fail("Unexpected end of expression")
    }
}

/// An expression tree.
#[derive(Debug)]
enum Node {
    Value(Val),
    Accessor(String),
    Prefix(String, Box<Node>),
    Binary(String, Box<Node>, Box<Node>),
}

/// Binary operators by precedence level, lowest first (stagePlanner.go).
const LEVELS: [&[&str]; 10] = [
    &[","],
    &["?", ":", "??"],
    &["||"],
    &["&&"],
    &["==", "!=", ">", ">=", "<", "<=", "=~", "!~", "in"],
    &["&", "|", "^"],
    &[">>", "<<"],
    &["+", "-"],
    &["*", "/", "%"],
    &["**"],
];

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl Parser<'_> {
    fn binary(&mut self, level: usize) -> Result<Node, EvalError> {
        let Some(ops) = LEVELS.get(level) else {
            return self.prefix();
        };
        let mut left = self.binary(level + 1)?;
        while let Some(t) = self.tokens.get(self.at) {
            let is_op = matches!(
                t.kind,
                Kind::Separator
                    | Kind::Ternary
                    | Kind::LogicalOp
                    | Kind::Comparator
                    | Kind::Modifier
            );
            if !is_op || !ops.contains(&t.text.as_str()) {
                break;
            }
            let op = t.text.clone();
            self.at += 1;
            let right = self.binary(level + 1)?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn prefix(&mut self) -> Result<Node, EvalError> {
        match self.tokens.get(self.at) {
            Some(t) if t.kind == Kind::Prefix => {
                let op = t.text.clone();
                self.at += 1;
                Ok(Node::Prefix(op, Box::new(self.prefix()?)))
            }
            _ => self.value(),
        }
    }

    fn value(&mut self) -> Result<Node, EvalError> {
        let Some(t) = self.tokens.get(self.at) else {
            return fail("Unexpected end of expression");
        };
        self.at += 1;
        match t.kind {
            Kind::Clause => {
                let inner = self.binary(0)?;
                match self.tokens.get(self.at) {
                    Some(c) if c.kind == Kind::ClauseClose => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => fail("Unbalanced parenthesis"),
                }
            }
            Kind::Accessor => Ok(Node::Accessor(t.text.clone())),
            Kind::Variable => Ok(Node::Value(Val::Str(t.text.clone()))),
            _ => t
                .value
                .clone()
                .map(Node::Value)
                .ok_or_else(|| EvalError(format!("Unexpected token '{}'", t.text))),
        }
    }
}

fn type_error(value: &Val, op: &str, what: &str) -> EvalError {
    EvalError(format!(
        "Value '{value}' cannot be used with the {what} '{op}'{}",
        match what {
            "comparator" | "modifier" => ", it is not a number",
            "logical operator" => ", it is not a bool",
            _ => "",
        }
    ))
}

fn number(v: &Val, op: &str, what: &str) -> Result<f64, EvalError> {
    match v {
        Val::Num(n) => Ok(*n),
        other => Err(type_error(other, op, what)),
    }
}

fn boolean(v: &Val, op: &str) -> Result<bool, EvalError> {
    match v {
        Val::Bool(b) => Ok(*b),
        other => Err(type_error(other, op, "logical operator")),
    }
}

fn eval(node: &Node) -> Result<Val, EvalError> {
    match node {
        Node::Value(v) => Ok(v.clone()),
        Node::Accessor(name) => fail(format!(
            "No parameter '{}' found.",
            name.split('.').next().unwrap_or(name)
        )),
        Node::Prefix(op, inner) => {
            let v = eval(inner)?;
            match (op.as_str(), &v) {
                ("!", Val::Bool(b)) => Ok(Val::Bool(!b)),
                ("-", Val::Num(n)) => Ok(Val::Num(-n)),
                ("~", _) => fail("gameops does not evaluate the bitwise operator '~' in a when"),
                _ => Err(type_error(&v, op, "prefix")),
            }
        }
        Node::Binary(op, left, right) => binary(op, left, right),
    }
}

fn binary(op: &str, left: &Node, right: &Node) -> Result<Val, EvalError> {
    let l = eval(left)?;
    // evaluateStage's short circuit: before the right side is evaluated.
    match (op, &l) {
        ("&&", Val::Bool(false)) => return Ok(Val::Bool(false)),
        ("||", Val::Bool(true)) => return Ok(Val::Bool(true)),
        _ => {}
    }
    let r = eval(right)?;
    let cmp = |f: fn(std::cmp::Ordering) -> bool| -> Result<Val, EvalError> {
        match (&l, &r) {
            (Val::Str(a), Val::Str(b)) => Ok(Val::Bool(f(a.cmp(b)))),
            (Val::Num(a), Val::Num(b)) => Ok(Val::Bool(a.partial_cmp(b).is_some_and(f))),
            // The combined check names the left value (evaluateStage).
            _ => Err(type_error(&l, op, "comparator")),
        }
    };
    match op {
        "," => Ok(Val::List(match l {
            Val::List(mut items) => {
                items.push(r);
                items
            }
            single => vec![single, r],
        })),
        "&&" | "||" => {
            boolean(&l, op)?;
            Ok(Val::Bool(boolean(&r, op)?))
        }
        "==" => Ok(Val::Bool(l == r)),
        "!=" => Ok(Val::Bool(l != r)),
        ">" => cmp(std::cmp::Ordering::is_gt),
        ">=" => cmp(std::cmp::Ordering::is_ge),
        "<" => cmp(std::cmp::Ordering::is_lt),
        "<=" => cmp(std::cmp::Ordering::is_le),
        "=~" | "!~" => {
            let Val::Str(text) = &l else {
                return Err(type_error(&l, op, "comparator"));
            };
            let Val::Str(pattern) = &r else {
                return Err(type_error(&r, op, "comparator"));
            };
            let re = regex::Regex::new(pattern).map_err(|e| EvalError(e.to_string()))?;
            Ok(Val::Bool(re.is_match(text) == (op == "=~")))
        }
        "in" => match &r {
            Val::List(items) => Ok(Val::Bool(items.contains(&l))),
            other => Err(type_error(other, op, "comparator")),
        },
        "+" => match (&l, &r) {
            (Val::Num(a), Val::Num(b)) => Ok(Val::Num(a + b)),
            (Val::Str(_), _) | (_, Val::Str(_)) => Ok(Val::Str(format!("{l}{r}"))),
            _ => Err(type_error(&l, op, "modifier")),
        },
        "-" | "*" | "/" | "%" | "**" => {
            let a = number(&l, op, "modifier")?;
            let b = number(&r, op, "modifier")?;
            Ok(Val::Num(match op {
                "-" => a - b,
                "*" => a * b,
                "/" => a / b,
                "%" => a % b,
                _ => a.powf(b),
            }))
        }
        other => fail(format!(
            "gameops does not evaluate the operator '{other}' in a when (Argo's govaluate does); rewrite it with ==, !=, <, >, =~, in, && and ||"
        )),
    }
}

/// Evaluates an already substituted `when` as Argo's `shouldExecute` does.
pub fn should_execute(when: &str) -> Result<bool, EvalError> {
    if when.is_empty() {
        return Ok(true);
    }
    let invalid = |e: EvalError| {
        let hint = if e.0.contains("Invalid token") {
            " (hint: try wrapping the affected expression in quotes (\"))"
        } else {
            ""
        };
        EvalError(format!("Invalid 'when' expression '{when}': {e}{hint}"))
    };
    let mut tokens = tokens(when).map_err(invalid)?;
    check_syntax(&tokens).map_err(invalid)?;
    // Argo: bare words are strings, so `foo != bar` needs no quotes.
    for t in &mut tokens {
        if t.kind == Kind::Variable {
            t.kind = Kind::Str;
            t.value = Some(Val::Str(t.text.clone()));
        }
    }
    check_syntax(&tokens)
        .map_err(|e| EvalError(format!("Failed to parse 'when' expression '{when}': {e}")))?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
    };
    let tree = parser
        .binary(0)
        .map_err(|e| EvalError(format!("Failed to parse 'when' expression '{when}': {e}")))?;
    let result = eval(&tree)
        .map_err(|e| EvalError(format!("Failed to evaluate 'when' expresion '{when}': {e}")))?;
    match result {
        Val::Bool(b) => Ok(b),
        other => fail(format!(
            "Expected boolean evaluation for '{when}'. Got {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected outcomes read from govaluate v3.0.1-0.20250325060307 and
    /// argo-workflows v4.0.5 workflow/controller/steps.go `shouldExecute`
    /// (and its tests, steps_test.go `TestShouldExecute`).
    #[test]
    fn argo_when_expressions() {
        let cases: &[(&str, Result<bool, &str>)] = &[
            ("", Ok(true)),
            ("Succeeded == Succeeded", Ok(true)),
            ("Failed == Succeeded", Ok(false)),
            ("foo != bar", Ok(true)),
            ("'heads' == heads", Ok(true)),
            ("\"tails\" == 'tails'", Ok(true)),
            ("true", Ok(true)),
            ("true == true && false == false", Ok(true)),
            ("Failed == Failed && true == false", Ok(false)),
            ("(a == b || c == c) && !(1 > 2)", Ok(true)),
            ("5 > 3", Ok(true)),
            ("10 > 9", Ok(true)),
            ("'10' > '9'", Ok(false)),
            ("3 == '3'", Ok(false)),
            ("3 == 3.0", Ok(true)),
            ("0x10 == 16", Ok(true)),
            ("-1 < 0", Ok(true)),
            ("1 + 2 == 3", Ok(true)),
            ("2 * 3 + 1 == 7", Ok(true)),
            ("a + 1 == a1", Ok(true)),
            ("heads in (heads, tails)", Ok(true)),
            ("3 in (1, 2)", Ok(false)),
            (
                "release-2 =~ '^release-'",
                Err("Value 'release' cannot be used with the modifier '-', it is not a number"),
            ),
            ("'release-2' =~ '^release-[0-9]+$'", Ok(true)),
            ("'release-2' !~ '^v'", Ok(true)),
            // Argo turns bare words into strings: `!` then takes none.
            (
                "!Succeeded",
                Err("Cannot transition token types from PREFIX [!] to STRING [Succeeded]"),
            ),
            // An empty operand, as "{{steps.a.outputs.result}} == x" with no output gives.
            (
                " == x",
                Err("Cannot transition token types from UNKNOWN [<nil>] to COMPARATOR [==]"),
            ),
            ("x == ", Err("Unexpected end of expression")),
            // Hyphenated unquoted values: a minus on strings.
            (
                "my-app == my-app",
                Err("Value 'my' cannot be used with the modifier '-', it is not a number"),
            ),
            ("'my-app' == 'my-app'", Ok(true)),
            // A version or an image is not a bare word.
            (
                "1.2.3 == 1.2.3",
                Err("Unable to parse numeric value '1.2.3' to float64"),
            ),
            (
                "registry.example.com/game == x",
                Err("Unable to access unexported field 'example'"),
            ),
            ("Foo.Bar == x", Err("No parameter 'Foo' found.")),
            ("a == b )", Err("Unbalanced parenthesis")),
            ("'open", Err("Unclosed string literal")),
            ("a === b", Err("Invalid token: '==='")),
            ("5", Err("Expected boolean evaluation for '5'. Got 5")),
            (
                "a > 1",
                Err("Value 'a' cannot be used with the comparator '>', it is not a number"),
            ),
            (
                "1 > a",
                Err("Value '1' cannot be used with the comparator '>', it is not a number"),
            ),
            (
                "true && yes",
                Err("Value 'yes' cannot be used with the logical operator '&&', it is not a bool"),
            ),
            ("false && yes", Ok(false)),
            ("true || yes", Ok(true)),
        ];
        for (when, want) in cases {
            let got = should_execute(when);
            match (want, &got) {
                (Ok(b), Ok(g)) => assert_eq!(b, g, "{when:?}"),
                (Err(part), Err(e)) => assert!(e.0.contains(part), "{when:?}: {e}"),
                _ => panic!("{when:?}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn the_invalid_token_hint_is_argos() {
        let e = should_execute("a === b").unwrap_err();
        assert!(
            e.0.ends_with("(hint: try wrapping the affected expression in quotes (\"))"),
            "{e}"
        );
    }
}
