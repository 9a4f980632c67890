//! `{{= expression}}`: the expr-lang subset Argo templates use, evaluated
//! as Argo's controller does (`util/template/expression_template.go`
//! `expressionReplaceCore`, with the environment of `util/expr/env/env.go`
//! `GetFuncMap`): variables are the template's strings (`inputs.parameters.x`
//! or `inputs.parameters['x']`), so numbers come from `asInt`/`asFloat`;
//! operators and their type rules as expr-lang's checker
//! (`checker/checker.go`) has them: `+ - * / % **`, comparisons, `&& || !`
//! (`and or not`), `in`, `matches`, `contains`, `startsWith`, `endsWith`,
//! `?:`, `??`; functions `asInt`/`int`, `asFloat`/`float`, `string`,
//! `toJson`, `len`, `upper`, `lower`, `trim`, `split`, `join`. The result is
//! written as Argo writes it: a string as is, anything else as JSON. Sprig
//! functions, closures and `jsonpath` are refused with a clear error.

use std::collections::BTreeMap;

use serde_json::Value;

/// Evaluates `source` over `scope` (flat names such as
/// `inputs.parameters.surge`): the text Argo would put in its place, or
/// what is wrong, worded as Argo words it.
pub fn evaluate(source: &str, scope: &BTreeMap<String, String>) -> Result<String, String> {
    match run(source, scope)? {
        Value::Null => Err(format!("failed to evaluate expression {source:?}")),
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(go_number(&n)),
        other => Ok(other.to_string()),
    }
}

/// Evaluates a condition as Argo's `argoexpr.EvalBool` does (a
/// `retryStrategy.expression`).
pub fn evaluate_bool(source: &str, scope: &BTreeMap<String, String>) -> Result<bool, String> {
    match run(source, scope)? {
        Value::Bool(b) => Ok(b),
        other => Err(format!(
            "unable to cast expression result '{}' to bool",
            match other {
                Value::String(s) => s,
                other => other.to_string(),
            }
        )),
    }
}

fn run(source: &str, scope: &BTreeMap<String, String>) -> Result<Value, String> {
    let tokens = lex(source)?;
    let mut parser = Parser { tokens, at: 0 };
    let ast = parser.ternary()?;
    if let Some(t) = parser.tokens.get(parser.at) {
        return Err(format!("unexpected token {t:?}"));
    }
    eval(&ast, &environment(scope))
}

/// Go's JSON form of a number (`2`, not `2.0`).
fn go_number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
        _ => n.to_string(),
    }
}

/// The flat names as nested maps (Argo's `expand.Expand`).
fn environment(scope: &BTreeMap<String, String>) -> Value {
    fn insert(node: &mut serde_json::Map<String, Value>, parts: &[&str], value: &str) {
        match parts {
            [] => {}
            [last] => {
                node.entry((*last).to_owned())
                    .or_insert_with(|| Value::String(value.to_owned()));
            }
            [first, rest @ ..] => {
                let child = node
                    .entry((*first).to_owned())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if !child.is_object() {
                    *child = Value::Object(serde_json::Map::new());
                }
                if let Value::Object(m) = child {
                    insert(m, rest, value);
                }
            }
        }
    }
    let mut root = serde_json::Map::new();
    for (name, value) in scope {
        insert(&mut root, &name.split('.').collect::<Vec<_>>(), value);
    }
    Value::Object(root)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(Value),
    Str(String),
    Ident(String),
    Op(&'static str),
}

const OPERATORS: [&str; 24] = [
    "**", "==", "!=", "<=", ">=", "&&", "||", "??", "<", ">", "+", "-", "*", "/", "%", "!", "(",
    ")", "[", "]", ".", ",", "?", ":",
];

fn lex(source: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == '_')
            {
                // `1..2` is a range, not a number.
                if chars[i] == '.' && chars.get(i + 1).is_some_and(|n| !n.is_ascii_digit()) {
                    break;
                }
                i += 1;
            }
            let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            let number = if text.contains('.') {
                text.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            } else {
                text.parse::<i64>().ok().map(Value::from)
            };
            out.push(Token::Number(
                number.ok_or_else(|| format!("invalid number {text}"))?,
            ));
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("literal not terminated".into()),
                    Some(q) if *q == c => break,
                    Some('\\') => {
                        i += 1;
                        s.push(match chars.get(i) {
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some(other) => *other,
                            None => return Err("literal not terminated".into()),
                        });
                    }
                    Some(other) => s.push(*other),
                }
                i += 1;
            }
            i += 1;
            out.push(Token::Str(s));
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = OPERATORS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| format!("unexpected token {c:?}"))?;
            i += op.len();
            out.push(Token::Op(op));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Ast {
    Literal(Value),
    Name(String),
    Member(Box<Ast>, Box<Ast>),
    Call(String, Vec<Ast>),
    Unary(&'static str, Box<Ast>),
    Binary(String, Box<Ast>, Box<Ast>),
    Ternary(Box<Ast>, Box<Ast>, Box<Ast>),
    List(Vec<Ast>),
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

/// Binary operators by precedence, lowest first (expr-lang
/// `parser/operator`): `??`, `or`, `and`, equality and membership,
/// additive, multiplicative, `**`.
const LEVELS: [&[&str]; 7] = [
    &["??"],
    &["||", "or"],
    &["&&", "and"],
    &[
        "==",
        "!=",
        "<",
        ">",
        "<=",
        ">=",
        "in",
        "not in",
        "matches",
        "contains",
        "startsWith",
        "endsWith",
    ],
    &["+", "-"],
    &["*", "/", "%"],
    &["**"],
];

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, op: &str) -> bool {
        let hit = match self.peek() {
            Some(Token::Op(o)) => *o == op,
            Some(Token::Ident(i)) => i == op,
            _ => false,
        };
        if hit {
            self.at += 1;
        }
        hit
    }

    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(format!("expected {op}, found {:?}", self.peek()))
        }
    }

    fn ternary(&mut self) -> Result<Ast, String> {
        let cond = self.binary(0)?;
        if self.eat("?") {
            let then = self.ternary()?;
            self.expect(":")?;
            let otherwise = self.ternary()?;
            return Ok(Ast::Ternary(
                Box::new(cond),
                Box::new(then),
                Box::new(otherwise),
            ));
        }
        Ok(cond)
    }

    /// The operator at the cursor if it belongs to `level` (`not in` is
    /// two tokens).
    fn operator(&mut self, level: usize) -> Option<String> {
        let ops = LEVELS[level];
        if ops.contains(&"not in")
            && matches!(self.peek(), Some(Token::Ident(i)) if i == "not")
            && matches!(self.tokens.get(self.at + 1), Some(Token::Ident(i)) if i == "in")
        {
            self.at += 2;
            return Some("not in".into());
        }
        let op = match self.peek()? {
            Token::Op(o) => (*o).to_owned(),
            Token::Ident(i) => i.clone(),
            _ => return None,
        };
        if ops.contains(&op.as_str()) {
            self.at += 1;
            Some(op)
        } else {
            None
        }
    }

    fn binary(&mut self, level: usize) -> Result<Ast, String> {
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        while let Some(op) = self.operator(level) {
            // `**` is right-associative.
            let right = if op == "**" {
                self.binary(level)?
            } else {
                self.binary(level + 1)?
            };
            left = Ast::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Ast, String> {
        for op in ["!", "not", "-", "+"] {
            if self.eat(op) {
                let operand = self.unary()?;
                let op = match op {
                    "not" | "!" => "!",
                    "-" => "-",
                    _ => "+",
                };
                return Ok(Ast::Unary(op, Box::new(operand)));
            }
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Ast, String> {
        let mut node = self.primary()?;
        loop {
            if self.eat(".") {
                match self.peek().cloned() {
                    Some(Token::Ident(name)) => {
                        self.at += 1;
                        node = Ast::Member(
                            Box::new(node),
                            Box::new(Ast::Literal(Value::String(name))),
                        );
                    }
                    other => return Err(format!("expected a name after '.', found {other:?}")),
                }
            } else if self.eat("[") {
                let index = self.ternary()?;
                self.expect("]")?;
                node = Ast::Member(Box::new(node), Box::new(index));
            } else if self.eat("(") {
                let name = match &node {
                    Ast::Name(n) => n.clone(),
                    Ast::Member(base, prop) => match (base.as_ref(), prop.as_ref()) {
                        (Ast::Name(b), Ast::Literal(Value::String(p))) => format!("{b}.{p}"),
                        _ => return Err("only named functions can be called".into()),
                    },
                    _ => return Err("only named functions can be called".into()),
                };
                let mut args = Vec::new();
                if !self.eat(")") {
                    loop {
                        args.push(self.ternary()?);
                        if self.eat(")") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                node = Ast::Call(name, args);
            } else {
                return Ok(node);
            }
        }
    }

    fn primary(&mut self) -> Result<Ast, String> {
        let token = self.peek().cloned().ok_or("unexpected end of expression")?;
        self.at += 1;
        Ok(match token {
            Token::Number(n) => Ast::Literal(n),
            Token::Str(s) => Ast::Literal(Value::String(s)),
            Token::Ident(i) => match i.as_str() {
                "true" => Ast::Literal(Value::Bool(true)),
                "false" => Ast::Literal(Value::Bool(false)),
                "nil" => Ast::Literal(Value::Null),
                _ => Ast::Name(i),
            },
            Token::Op("(") => {
                let inner = self.ternary()?;
                self.expect(")")?;
                inner
            }
            Token::Op("[") => {
                let mut items = Vec::new();
                if !self.eat("]") {
                    loop {
                        items.push(self.ternary()?);
                        if self.eat("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Ast::List(items)
            }
            Token::Op(o) => return Err(format!("unexpected token {o:?}")),
        })
    }
}

/// expr-lang's name for a value's type, as its errors print it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn mismatched(op: &str, l: &Value, r: &Value) -> String {
    format!(
        "invalid operation: {op} (mismatched types {} and {})",
        type_name(l),
        type_name(r)
    )
}

fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn eval(ast: &Ast, env: &Value) -> Result<Value, String> {
    match ast {
        Ast::Literal(v) => Ok(v.clone()),
        Ast::Name(n) => env
            .get(n)
            .cloned()
            .ok_or_else(|| format!("unknown name {n}")),
        Ast::Member(base, prop) => {
            let base = eval(base, env)?;
            let prop = eval(prop, env)?;
            Ok(match (&base, &prop) {
                (Value::Object(m), Value::String(k)) => m.get(k).cloned().unwrap_or(Value::Null),
                (Value::Array(items), Value::Number(i)) => {
                    let len = items.len() as i64;
                    let i = i.as_i64().unwrap_or(0);
                    let at = if i < 0 { len + i } else { i };
                    usize::try_from(at)
                        .ok()
                        .and_then(|at| items.get(at).cloned())
                        .ok_or_else(|| format!("index out of range: {i} (array length is {len})"))?
                }
                _ => {
                    return Err(format!(
                        "type {}[{}] is undefined",
                        type_name(&base),
                        type_name(&prop)
                    ));
                }
            })
        }
        Ast::List(items) => Ok(Value::Array(
            items
                .iter()
                .map(|i| eval(i, env))
                .collect::<Result<_, _>>()?,
        )),
        Ast::Ternary(cond, then, otherwise) => match eval(cond, env)? {
            Value::Bool(true) => eval(then, env),
            Value::Bool(false) => eval(otherwise, env),
            other => Err(format!(
                "non-bool expression (type {}) used as condition",
                type_name(&other)
            )),
        },
        Ast::Unary(op, operand) => {
            let v = eval(operand, env)?;
            match (*op, &v) {
                ("!", Value::Bool(b)) => Ok(Value::Bool(!b)),
                ("-", Value::Number(n)) => Ok(match n.as_i64() {
                    Some(i) if !n.is_f64() => Value::from(-i),
                    _ => float(-n.as_f64().unwrap_or(0.0)),
                }),
                ("+", Value::Number(_)) => Ok(v),
                _ => Err(format!(
                    "invalid operation: {op} (mismatched type {})",
                    type_name(&v)
                )),
            }
        }
        Ast::Binary(op, l, r) => binary(op, l, r, env),
        Ast::Call(name, args) => {
            let args: Vec<Value> = args
                .iter()
                .map(|a| eval(a, env))
                .collect::<Result<_, _>>()?;
            call(name, &args)
        }
    }
}

fn binary(op: &str, l: &Ast, r: &Ast, env: &Value) -> Result<Value, String> {
    // Short-circuits first.
    match op {
        "&&" | "and" | "||" | "or" => {
            let left = eval(l, env)?;
            let Value::Bool(lb) = left else {
                return Err(mismatched(op, &left, &eval(r, env)?));
            };
            if (op == "&&" || op == "and") != lb {
                return Ok(Value::Bool(lb));
            }
            let right = eval(r, env)?;
            return match right {
                Value::Bool(rb) => Ok(Value::Bool(rb)),
                _ => Err(mismatched(op, &left, &right)),
            };
        }
        "??" => {
            let left = eval(l, env).unwrap_or(Value::Null);
            return if left.is_null() {
                eval(r, env)
            } else {
                Ok(left)
            };
        }
        _ => {}
    }
    let (a, b) = (eval(l, env)?, eval(r, env)?);
    let num = |v: &Value| v.as_f64();
    let both_int =
        matches!((&a, &b), (Value::Number(x), Value::Number(y)) if !x.is_f64() && !y.is_f64());
    Ok(match (op, &a, &b) {
        ("==", ..) => Value::Bool(equal(&a, &b)),
        ("!=", ..) => Value::Bool(!equal(&a, &b)),
        ("+", Value::String(x), Value::String(y)) => Value::String(format!("{x}{y}")),
        ("+" | "-" | "*" | "%", Value::Number(_), Value::Number(_)) if both_int => {
            let (x, y) = (a.as_i64().unwrap_or(0), b.as_i64().unwrap_or(0));
            Value::from(match op {
                "+" => x.wrapping_add(y),
                "-" => x.wrapping_sub(y),
                "*" => x.wrapping_mul(y),
                _ if y == 0 => return Err("integer divide by zero".into()),
                _ => x % y,
            })
        }
        ("+" | "-" | "*" | "/" | "**", Value::Number(_), Value::Number(_)) => {
            let (x, y) = (num(&a).unwrap_or(0.0), num(&b).unwrap_or(0.0));
            float(match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" => x / y,
                _ => x.powf(y),
            })
        }
        ("<" | ">" | "<=" | ">=", Value::Number(_), Value::Number(_)) => {
            let ord = num(&a).partial_cmp(&num(&b));
            Value::Bool(compare(op, ord))
        }
        ("<" | ">" | "<=" | ">=", Value::String(x), Value::String(y)) => {
            Value::Bool(compare(op, Some(x.cmp(y))))
        }
        ("in" | "not in", _, Value::Array(items)) => {
            Value::Bool(items.iter().any(|i| equal(i, &a)) == (op == "in"))
        }
        ("in" | "not in", Value::String(k), Value::Object(m)) => {
            Value::Bool(m.contains_key(k) == (op == "in"))
        }
        ("contains", Value::String(x), Value::String(y)) => Value::Bool(x.contains(y.as_str())),
        ("startsWith", Value::String(x), Value::String(y)) => {
            Value::Bool(x.starts_with(y.as_str()))
        }
        ("endsWith", Value::String(x), Value::String(y)) => Value::Bool(x.ends_with(y.as_str())),
        ("matches", Value::String(x), Value::String(y)) => {
            let re =
                regex::Regex::new(y).map_err(|e| format!("invalid regular expression: {e}"))?;
            Value::Bool(re.is_match(x))
        }
        _ => return Err(mismatched(op, &a, &b)),
    })
}

fn compare(op: &str, ord: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    matches!(
        (op, ord),
        ("<", Some(Less))
            | (">", Some(Greater))
            | ("<=", Some(Less | Equal))
            | (">=", Some(Greater | Equal))
    )
}

/// expr-lang's `==`: numbers by value (`1 == 1.0`), everything else by
/// type and value.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let one = || -> Result<&Value, String> {
        match args {
            [v] => Ok(v),
            _ => Err(format!("{name}: expected 1 argument, got {}", args.len())),
        }
    };
    let text = |v: &Value| -> Result<String, String> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{name}: expected a string, got {}", type_name(v)))
    };
    Ok(match name {
        "asInt" | "int" => match one()? {
            Value::String(s) => Value::from(
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax"))?,
            ),
            Value::Number(n) => Value::from(n.as_f64().unwrap_or(0.0).trunc() as i64),
            other => return Err(format!("invalid operation: int({})", type_name(other))),
        },
        "asFloat" | "float" => match one()? {
            Value::String(s) => float(
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))?,
            ),
            Value::Number(n) => float(n.as_f64().unwrap_or(0.0)),
            other => return Err(format!("invalid operation: float({})", type_name(other))),
        },
        "string" => match one()? {
            Value::String(s) => Value::String(s.clone()),
            Value::Number(n) => Value::String(go_number(n)),
            other => Value::String(other.to_string()),
        },
        "toJson" => Value::String(one()?.to_string()),
        "len" => Value::from(match one()? {
            Value::String(s) => s.chars().count(),
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            other => {
                return Err(format!(
                    "invalid argument for len (type {})",
                    type_name(other)
                ));
            }
        }),
        "upper" => Value::String(text(one()?)?.to_uppercase()),
        "lower" => Value::String(text(one()?)?.to_lowercase()),
        "trim" => Value::String(text(one()?)?.trim().to_owned()),
        "split" => match args {
            [s, sep] => Value::Array(
                text(s)?
                    .split(text(sep)?.as_str())
                    .map(|p| Value::String(p.to_owned()))
                    .collect(),
            ),
            _ => return Err("split: expected 2 arguments".into()),
        },
        "join" => match args {
            [Value::Array(items), sep] => Value::String(
                items
                    .iter()
                    .map(text)
                    .collect::<Result<Vec<_>, _>>()?
                    .join(&text(sep)?),
            ),
            _ => return Err("join: expected a list and a separator".into()),
        },
        _ => {
            return Err(format!(
                "the local runner does not evaluate {name}(): of Argo's expression functions it has asInt, asFloat, int, float, string, toJson, len, upper, lower, trim, split and join (Argo also has sprig.*, jsonpath and expr-lang's others)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("inputs.parameters.surge".into(), "3".into()),
            ("inputs.parameters.ratio".into(), "0.5".into()),
            ("inputs.parameters.image".into(), "mc:v2".into()),
            ("inputs.parameters.dry-run".into(), "false".into()),
            ("workflow.status".into(), "Failed".into()),
        ])
    }

    fn ok(source: &str) -> String {
        evaluate(source, &scope()).unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    /// Outcomes as expr-lang gives them and Argo writes them.
    #[test]
    fn expressions_evaluate_as_expr_lang_and_argo_write_them() {
        assert_eq!(ok("asInt(inputs.parameters.surge) + 1"), "4");
        assert_eq!(ok("asInt(inputs.parameters.surge) * 2 > 5"), "true");
        assert_eq!(ok("asFloat(inputs.parameters.ratio) * 4"), "2");
        assert_eq!(ok("asInt(inputs.parameters.surge) / 2"), "1.5");
        assert_eq!(ok("7 % 3"), "1");
        assert_eq!(ok("2 ** 3 ** 2"), "512");
        assert_eq!(
            ok("inputs.parameters['dry-run'] == 'true' ? 'skip' : 'go'"),
            "go"
        );
        assert_eq!(
            ok("workflow.status == \"Succeeded\" || workflow.status == \"Failed\""),
            "true"
        );
        assert_eq!(
            ok("not (workflow.status in ['Succeeded', 'Error'])"),
            "true"
        );
        assert_eq!(ok("workflow.status not in ['Failed']"), "false");
        assert_eq!(
            ok(
                "inputs.parameters.image startsWith 'mc:' && inputs.parameters.image matches 'v[0-9]+$'"
            ),
            "true"
        );
        assert_eq!(ok("split(inputs.parameters.image, ':')[1]"), "v2");
        assert_eq!(
            ok("split(inputs.parameters.image, ':')[-1] + '-hotfix'"),
            "v2-hotfix"
        );
        assert_eq!(ok("upper(join(['a', 'b'], '-'))"), "A-B");
        assert_eq!(ok("len(inputs.parameters.image)"), "5");
        assert_eq!(ok("toJson([1, 'a'])"), "[1,\"a\"]");
        assert_eq!(ok("[asInt('1'), 2.5]"), "[1,2.5]");
        assert_eq!(ok("inputs.parameters.missing ?? 'default'"), "default");
        assert_eq!(ok("string(1_000)"), "1000");
    }

    #[test]
    fn type_errors_are_expr_langs() {
        let err = |s: &str| evaluate(s, &scope()).expect_err(s);
        assert_eq!(
            err("inputs.parameters.surge > 0"),
            "invalid operation: > (mismatched types string and int)"
        );
        assert_eq!(err("nope == 1"), "unknown name nope");
        assert!(err("inputs.parameters.missing").starts_with("failed to evaluate expression"));
        assert!(err("asInt('x')").contains("invalid syntax"));
        assert!(err("sprig.trim(' a ')").contains("does not evaluate sprig.trim()"));
        assert!(err("1 +").contains("unexpected end"));
        assert_eq!(
            evaluate_bool("workflow.status == 'Failed'", &scope()),
            Ok(true)
        );
        assert_eq!(
            evaluate_bool("workflow.status", &scope()),
            Err("unable to cast expression result 'Failed' to bool".into())
        );
    }
}
