"""A small Go text/template renderer: the subset of Helm's template language
the chart in helm/ uses, so the chart can be rendered and checked without a
`helm` binary (none is available to the tests).

Supported: {{ pipeline }}, {{- and -}} trimming, {{/* comments */}},
if / else if / else / end, range (over a list or a map, sorted by key, with
`$k, $v :=` or `$v :=` or no variables), with, define / include, variable
assignment ($x := ...), fields (.a.b, $.a.b, $x.a), parenthesised
sub-pipelines, string and number literals, and the functions quote, toYaml,
nindent, indent, include, dict, default, join, eq, ne, and, or, not.
Anything else raises TemplateError: the chart must stay inside this subset
(tests/deploy/chart_test.py fails otherwise), which keeps this renderer honest.
"""

import re

import yaml


class TemplateError(Exception):
    pass


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _tokenize(source):
    """Text and action tokens, with Go's whitespace trimming applied."""
    tokens = []
    position = 0
    for match in _ACTION.finditer(source):
        text = source[position:match.start()]
        if match.group(1):
            text = text.rstrip(" \t\r\n")
        tokens.append(("text", text))
        body = match.group(2).strip()
        if not (body.startswith("/*") and body.endswith("*/")):
            tokens.append(("action", body))
        position = match.end()
        if match.group(3):
            while position < len(source) and source[position] in " \t\r\n":
                position += 1
    tokens.append(("text", source[position:]))
    return tokens


def _parse(tokens, index, stop):
    """Nodes until one of the `stop` keywords; returns (nodes, index, keyword)."""
    nodes = []
    while index < len(tokens):
        kind, value = tokens[index]
        index += 1
        if kind == "text":
            if value:
                nodes.append(("text", value))
            continue
        keyword = value.split(None, 1)[0] if value else ""
        rest = value[len(keyword):].strip()
        if keyword in stop:
            return nodes, index - 1, keyword
        if keyword in ("if", "with", "range"):
            node, index = _parse_block(keyword, rest, tokens, index)
            nodes.append(node)
        elif keyword == "define":
            body, index, end = _parse(tokens, index, ("end",))
            if end != "end":
                raise TemplateError("define without end")
            nodes.append(("define", _string_literal(rest), body))
            index += 1
        elif keyword in ("end", "else"):
            raise TemplateError("unexpected {{ %s }}" % value)
        else:
            nodes.append(("action", value))
    return nodes, index, None


def _parse_block(keyword, condition, tokens, index):
    body, index, end = _parse(tokens, index, ("end", "else"))
    else_body = []
    if end == "else":
        else_text = tokens[index][1][len("else"):].strip()
        index += 1
        if else_text.startswith("if "):
            node, index = _parse_block("if", else_text[3:].strip(), tokens, index)
            return (keyword, condition, body, [node]), index
        else_body, index, end = _parse(tokens, index, ("end",))
    if end != "end":
        raise TemplateError("{{ %s %s }} without end" % (keyword, condition))
    return (keyword, condition, body, else_body), index + 1


def _string_literal(text):
    text = text.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise TemplateError("expected a string literal, got %r" % text)
    return text[1:-1]


_EXPR_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\(|\)|\||:=|[^\s()|]+)')


def _split_expression(text):
    tokens = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _EXPR_TOKEN.match(text, position)
        if not match:
            raise TemplateError("cannot parse %r" % text)
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _truthy(value):
    return value not in (None, False, 0, "") and not (
        isinstance(value, (list, dict)) and not value)


def _go_string(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise TemplateError("printing a map or list: use toYaml")
    return str(value)


def _quote(value):
    text = _go_string(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _to_yaml(value):
    if value is None:
        return ""
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _indent(width, text):
    pad = " " * int(width)
    return "\n".join(pad + line for line in _go_string(text).split("\n"))


def _dict(*pairs):
    if len(pairs) % 2:
        raise TemplateError("dict needs key/value pairs")
    return {pairs[i]: pairs[i + 1] for i in range(0, len(pairs), 2)}


class Renderer:
    def __init__(self):
        self.defines = {}

    def load_helpers(self, source):
        nodes = _parse(_tokenize(source), 0, ())[0]
        self._collect_defines(nodes)

    def render(self, source, root):
        nodes, index, end = _parse(_tokenize(source), 0, ())
        if end is not None:
            raise TemplateError("stray {{ %s }}" % end)
        self._collect_defines(nodes)
        out = []
        self._run(nodes, root, {"$": root}, out)
        return "".join(out)

    def _collect_defines(self, nodes):
        for node in nodes:
            if node[0] == "define":
                self.defines[node[1]] = node[2]

    def _run(self, nodes, dot, variables, out):
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "define":
                continue
            elif kind == "action":
                self._action(node[1], dot, variables, out)
            elif kind == "if":
                branch = node[2] if _truthy(self._eval(node[1], dot, variables)) else node[3]
                self._run(branch, dot, dict(variables), out)
            elif kind == "with":
                value = self._eval(node[1], dot, variables)
                if _truthy(value):
                    self._run(node[2], value, dict(variables), out)
                else:
                    self._run(node[3], dot, dict(variables), out)
            elif kind == "range":
                self._range(node, dot, variables, out)

    def _action(self, text, dot, variables, out):
        tokens = _split_expression(text)
        if len(tokens) >= 3 and tokens[0].startswith("$") and tokens[1] == ":=":
            variables[tokens[0]] = self._pipeline(tokens[2:], dot, variables)
            return
        out.append(_go_string(self._pipeline(tokens, dot, variables)))

    def _range(self, node, dot, variables, out):
        header = node[1]
        names = []
        if ":=" in header:
            declared, header = header.split(":=", 1)
            names = [name.strip() for name in declared.split(",")]
        collection = self._eval(header, dot, variables)
        if isinstance(collection, dict):
            items = [(key, collection[key]) for key in sorted(collection)]
        elif isinstance(collection, list):
            items = list(enumerate(collection))
        elif collection is None:
            items = []
        else:
            raise TemplateError("range over %r" % (collection,))
        if not items:
            self._run(node[3], dot, dict(variables), out)
        for key, value in items:
            scope = dict(variables)
            if len(names) == 2:
                scope[names[0]], scope[names[1]] = key, value
            elif len(names) == 1:
                scope[names[0]] = value
            self._run(node[2], value, scope, out)

    def _eval(self, text, dot, variables):
        return self._pipeline(_split_expression(text), dot, variables)

    def _pipeline(self, tokens, dot, variables):
        commands = [[]]
        depth = 0
        for token in tokens:
            depth += token == "("
            depth -= token == ")"
            if token == "|" and depth == 0:
                commands.append([])
            else:
                commands[-1].append(token)
        value = _NOTHING
        for command in commands:
            value = self._command(command, dot, variables, value)
        return value

    def _command(self, tokens, dot, variables, piped):
        if not tokens:
            raise TemplateError("empty command")
        args, index = [], 1
        while index < len(tokens):
            arg, index = self._operand(tokens, index, dot, variables)
            args.append(arg)
        if piped is not _NOTHING:
            args.append(piped)
        head = tokens[0]
        if head in self._functions():
            return self._functions()[head](*args)
        if args:
            raise TemplateError("%s is not a function" % head)
        return self._operand(tokens, 0, dot, variables)[0]

    def _operand(self, tokens, index, dot, variables):
        token = tokens[index]
        if token == "(":
            depth, end = 0, index
            while True:
                depth += tokens[end] == "("
                depth -= tokens[end] == ")"
                if depth == 0:
                    break
                end += 1
            return self._pipeline(tokens[index + 1:end], dot, variables), end + 1
        if token.startswith('"'):
            return bytes(token[1:-1], "utf-8").decode("unicode_escape"), index + 1
        if re.fullmatch(r"-?\d+", token):
            return int(token), index + 1
        if token in ("true", "false"):
            return token == "true", index + 1
        if token.startswith("$"):
            name, _, path = token.partition(".")
            if name not in variables:
                raise TemplateError("undefined variable %s" % name)
            return self._field(variables[name], path), index + 1
        if token.startswith("."):
            return self._field(dot, token[1:]), index + 1
        raise TemplateError("unknown word %r" % token)

    @staticmethod
    def _field(value, path):
        for part in [p for p in path.split(".") if p]:
            if not isinstance(value, dict):
                raise TemplateError("field %s of a non-map" % part)
            value = value.get(part)
        return value

    def _include(self, name, dot):
        if name not in self.defines:
            raise TemplateError("no template %r" % name)
        out = []
        self._run(self.defines[name], dot, {"$": dot}, out)
        return "".join(out)

    def _functions(self):
        return {
            "quote": _quote,
            "toYaml": _to_yaml,
            "nindent": lambda width, text: "\n" + _indent(width, text),
            "indent": _indent,
            "include": self._include,
            "dict": _dict,
            "default": lambda fallback, value=None: value if _truthy(value) else fallback,
            "join": lambda separator, items: separator.join(_go_string(i) for i in items or []),
            "eq": lambda a, b: a == b,
            "ne": lambda a, b: a != b,
            "and": lambda *values: all(_truthy(v) for v in values),
            "or": lambda *values: any(_truthy(v) for v in values),
            "not": lambda value: not _truthy(value),
        }


_NOTHING = object()
