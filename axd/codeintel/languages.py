"""Which language a file is, and how to find its definitions with tree-sitter.

Grammars come from the tree-sitter project's own PyPI wheels (tree-sitter-python, ...),
which ship compiled parsers; they are loaded lazily, once per process. Each language has a
tree-sitter query whose captures are `@def.<kind>` (the definition node), `@name` and
optionally `@body`; matching runs in C, so Python only sees definitions, never every node.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

CODE_EXTENSIONS = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".h++": "cpp",
    ".ipp": "cpp",
    ".rb": "ruby",
    ".rake": "ruby",
    ".gemspec": "ruby",
}
TEXT_EXTENSIONS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".txt": "text",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".ini": "ini",
    ".cfg": "ini",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".html": "html",
    ".htm": "html",
    ".css": "css",
    ".scss": "css",
    ".sql": "sql",
    ".xml": "xml",
}
TEXT_FILENAMES = {
    "Makefile": "make",
    "Dockerfile": "dockerfile",
    "Rakefile": "ruby",
    "Gemfile": "ruby",
}

CODE_LANGUAGES = tuple(sorted(set(CODE_EXTENSIONS.values())))
LANGUAGES = tuple(
    sorted(
        set(CODE_EXTENSIONS.values()) | set(TEXT_EXTENSIONS.values()) | set(TEXT_FILENAMES.values())
    )
)

KINDS = (
    "function",
    "method",
    "class",
    "interface",
    "struct",
    "enum",
    "type",
    "constant",
    "module",
    "impl",
    "macro",
    "text",
)

# Kinds whose functions are methods.
CONTAINERS = frozenset({"class", "interface", "struct", "enum", "impl"})

_GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
}

_JS_COMMON = """
(function_declaration name: (identifier) @name body: (_) @body) @def.function
(generator_function_declaration name: (identifier) @name body: (_) @body) @def.function
(method_definition name: (_) @name body: (_) @body) @def.method
(variable_declarator name: (identifier) @name
  value: [(arrow_function) (function_expression)] @body) @def.function
"""

_QUERIES = {
    "python": """
(function_definition name: (identifier) @name body: (block) @body) @def.function
(class_definition name: (identifier) @name body: (block) @body) @def.class
(module (expression_statement (assignment left: (identifier) @name) @def.constant))
""",
    "javascript": _JS_COMMON
    + """
(class_declaration name: (identifier) @name body: (class_body) @body) @def.class
""",
    "typescript": _JS_COMMON
    + """
(class_declaration name: (type_identifier) @name body: (class_body) @body) @def.class
(abstract_class_declaration name: (type_identifier) @name body: (class_body) @body) @def.class
(interface_declaration name: (type_identifier) @name body: (_) @body) @def.interface
(type_alias_declaration name: (type_identifier) @name) @def.type
(enum_declaration name: (identifier) @name body: (_) @body) @def.enum
(function_signature name: (identifier) @name) @def.function
(method_signature name: (_) @name) @def.method
(abstract_method_signature name: (_) @name) @def.method
(internal_module name: (_) @name body: (_) @body) @def.module
""",
    "go": """
(function_declaration name: (identifier) @name body: (block) @body) @def.function
(method_declaration receiver: (parameter_list) @receiver name: (field_identifier) @name
  body: (block) @body) @def.method
(type_spec name: (type_identifier) @name type: (struct_type) @body) @def.struct
(type_spec name: (type_identifier) @name type: (interface_type) @body) @def.interface
(type_spec name: (type_identifier) @name) @def.type
(const_spec name: (identifier) @name) @def.constant
""",
    "rust": """
(function_item name: (identifier) @name body: (block) @body) @def.function
(function_signature_item name: (identifier) @name) @def.function
(struct_item name: (type_identifier) @name) @def.struct
(union_item name: (type_identifier) @name) @def.struct
(enum_item name: (type_identifier) @name body: (_) @body) @def.enum
(trait_item name: (type_identifier) @name body: (_) @body) @def.interface
(impl_item type: (_) @name body: (declaration_list) @body) @def.impl
(type_item name: (type_identifier) @name) @def.type
(const_item name: (identifier) @name) @def.constant
(static_item name: (identifier) @name) @def.constant
(mod_item name: (identifier) @name body: (_) @body) @def.module
(macro_definition name: (identifier) @name) @def.macro
""",
    "java": """
(class_declaration name: (identifier) @name body: (_) @body) @def.class
(record_declaration name: (identifier) @name body: (_) @body) @def.class
(interface_declaration name: (identifier) @name body: (_) @body) @def.interface
(annotation_type_declaration name: (identifier) @name body: (_) @body) @def.interface
(enum_declaration name: (identifier) @name body: (_) @body) @def.enum
(method_declaration name: (identifier) @name) @def.method
(constructor_declaration name: (identifier) @name body: (_) @body) @def.method
(field_declaration declarator: (variable_declarator name: (identifier) @name)) @def.constant
""",
    "c": """
(function_definition declarator: (_) @name body: (compound_statement) @body) @def.function
(struct_specifier name: (type_identifier) @name body: (field_declaration_list) @body) @def.struct
(union_specifier name: (type_identifier) @name body: (field_declaration_list) @body) @def.struct
(enum_specifier name: (type_identifier) @name body: (enumerator_list) @body) @def.enum
(type_definition declarator: (type_identifier) @name) @def.type
(preproc_def name: (identifier) @name) @def.constant
(preproc_function_def name: (identifier) @name) @def.macro
""",
    "cpp": """
(function_definition declarator: (_) @name body: (compound_statement) @body) @def.function
(class_specifier name: (_) @name body: (field_declaration_list) @body) @def.class
(struct_specifier name: (_) @name body: (field_declaration_list) @body) @def.struct
(union_specifier name: (_) @name body: (field_declaration_list) @body) @def.struct
(enum_specifier name: (_) @name body: (enumerator_list) @body) @def.enum
(namespace_definition name: (_) @name body: (_) @body) @def.module
(type_definition declarator: (type_identifier) @name) @def.type
(alias_declaration name: (type_identifier) @name) @def.type
(field_declaration declarator: (function_declarator declarator: (_) @name)) @def.method
(preproc_def name: (identifier) @name) @def.constant
(preproc_function_def name: (identifier) @name) @def.macro
""",
    "ruby": """
(method name: (_) @name) @def.function
(singleton_method name: (_) @name) @def.method
(class name: (_) @name) @def.class
(module name: (_) @name) @def.module
(assignment left: (constant) @name) @def.constant
""",
}

_QUERIES["tsx"] = _QUERIES["typescript"]

# Nodes that wrap a definition and belong to it (decorators, `export`, templates...).
WRAPPERS = frozenset(
    {
        "decorated_definition",
        "export_statement",
        "lexical_declaration",
        "variable_declaration",
        "template_declaration",
        "ambient_declaration",
        "type_declaration",
        "const_declaration",
    }
)


@dataclass(frozen=True)
class Grammar:
    name: str
    language: Any
    query: Any


def detect(path: str) -> tuple[str, bool]:
    """(language, has_grammar) from the file name; `text` for anything unknown."""
    base = os.path.basename(path)
    if base in TEXT_FILENAMES:
        return TEXT_FILENAMES[base], False
    ext = os.path.splitext(base)[1].lower()
    if ext in CODE_EXTENSIONS:
        return CODE_EXTENSIONS[ext], True
    return TEXT_EXTENSIONS.get(ext, "text"), False


@cache
def grammar(name: str) -> Grammar:
    import tree_sitter

    module_name, attr = _GRAMMARS[name]
    module = importlib.import_module(module_name)
    language = tree_sitter.Language(getattr(module, attr)())
    return Grammar(name, language, tree_sitter.Query(language, _QUERIES[name]))
