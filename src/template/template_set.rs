//! Compiling a job's templates into one environment, collecting every problem (syntax
//! errors, unknown filters and tests) with where it is, instead of stopping at the first.

use minijinja::{Environment, ErrorKind};

use super::{describe_error, environment};

/// A template problem found while compiling, at a JSON pointer of the job file.
#[derive(Debug, Clone)]
pub struct TemplateProblem {
    pub pointer: String,
    /// Byte range inside the template text, when known.
    pub range: Option<std::ops::Range<usize>>,
    pub message: String,
}

/// Compiles templates into an environment and collects every problem rather than the first.
pub struct TemplateSet {
    pub env: Environment<'static>,
    pub problems: Vec<TemplateProblem>,
}

impl TemplateSet {
    pub fn new() -> TemplateSet {
        TemplateSet {
            env: environment(),
            problems: Vec::new(),
        }
    }

    /// Compile `source` under the name `pointer`; returns the name when it compiled.
    pub fn add(&mut self, pointer: &str, source: &str) -> Option<String> {
        if let Err(e) = self
            .env
            .add_template_owned(pointer.to_string(), source.to_string())
        {
            self.problems.push(TemplateProblem {
                pointer: pointer.to_string(),
                range: e.range(),
                message: format!("this template does not compile: {}", describe_error(&e)),
            });
            return None;
        }
        let before = self.problems.len();
        self.check_names(pointer, source);
        (self.problems.len() == before).then(|| pointer.to_string())
    }

    /// Unknown filters and tests are only found at render time by minijinja; find them now.
    fn check_names(&mut self, pointer: &str, source: &str) {
        use minijinja::machinery::{Token, tokenize};
        let tokens: Vec<_> = tokenize(source, false, Default::default())
            .filter_map(Result::ok)
            .collect();
        for (i, (tok, _)) in tokens.iter().enumerate() {
            let (is_filter, next) = match tok {
                Token::Pipe => (true, tokens.get(i + 1)),
                Token::Ident("filter")
                    if matches!(tokens.get(i.wrapping_sub(1)), Some((Token::BlockStart, _))) =>
                {
                    (true, tokens.get(i + 1))
                }
                Token::Ident("is") => match tokens.get(i + 1) {
                    Some((Token::Ident("not"), _)) => (false, tokens.get(i + 2)),
                    other => (false, other),
                },
                _ => continue,
            };
            let Some((Token::Ident(name), span)) = next else {
                continue;
            };
            let known = if is_filter {
                self.filter_exists(name)
            } else {
                self.test_exists(name)
            };
            if !known {
                let what = if is_filter { "filter" } else { "test" };
                self.problems.push(TemplateProblem {
                    pointer: pointer.to_string(),
                    range: Some(span.start_offset as usize..span.end_offset as usize),
                    message: format!("unknown {what} `{name}`"),
                });
            }
        }
    }

    fn probe(&self, expr: &str, unknown: ErrorKind) -> bool {
        match self.env.compile_expression(expr) {
            Ok(e) => !matches!(e.eval(()), Err(err) if err.kind() == unknown),
            Err(_) => true,
        }
    }

    fn filter_exists(&self, name: &str) -> bool {
        self.probe(&format!("none | {name}"), ErrorKind::UnknownFilter)
    }

    fn test_exists(&self, name: &str) -> bool {
        self.probe(&format!("none is {name}"), ErrorKind::UnknownTest)
    }
}

impl Default for TemplateSet {
    fn default() -> Self {
        TemplateSet::new()
    }
}
