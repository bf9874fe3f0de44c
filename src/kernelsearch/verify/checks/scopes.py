"""What a name in a candidate refers to, and which of its code runs when it is imported.

The static rules ban builtins such as `open` and `input`, but honest kernels also name their parameters and
locals `input` or `vars`. Python looks a name up in the function that binds it, then in enclosing functions,
then in the module, then in builtins; a class body looks in its own namespace, then the module. A function's
bindings come from `symtable` and always win (reading one before it is set raises, it never falls back).
Module and class bodies fall back at run time, so there a binding hides the builtin only when an unconditional
statement of that body made it on an earlier line and no `del` of that name exists anywhere.
"""
from __future__ import annotations

import ast
import symtable
from contextlib import contextmanager
from dataclasses import dataclass, field

COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
# symtable's own names for comprehension tables (Python 3.11 has them; 3.12+ inlines most, see _Scope)
_COMPREHENSION_TABLES = {"listcomp", "setcomp", "dictcomp", "genexpr"}


def code_run_on_import(tree: ast.Module, table: symtable.SymbolTable) -> ast.Module:
    """The module without the bodies of its top-level `if __name__ == "__main__":` blocks (else branches stay).
    A module that could rebind its own __name__ keeps them: there the guard might be true on import."""
    if _may_rebind_name(table):
        return tree
    body: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and _is_main_guard(stmt.test):
            body.extend(stmt.orelse)
        else:
            body.append(stmt)
    return ast.Module(body=body, type_ignores=tree.type_ignores)


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(mains) == 1


def _may_rebind_name(table: symtable.SymbolTable) -> bool:
    tables = [table]
    while tables:
        current = tables.pop()
        tables.extend(current.get_children())
        try:
            symbol = current.lookup("__name__")
        except KeyError:
            continue
        at_module = current.get_type() == "module"
        if symbol.is_declared_global() or (at_module and (symbol.is_assigned() or symbol.is_imported())):
            return True
    return False


@dataclass
class _Scope:
    kind: str  # "module", "class", "function" or "comprehension"
    table: symtable.SymbolTable | None = None  # None for comprehensions (Python 3.12+ has no table for most)
    bound_at: dict[str, int] = field(default_factory=dict)  # module/class: name -> last line of its sure binding
    own_locals: set[str] = field(default_factory=set)  # comprehension: its loop variables


class ScopedVisitor(ast.NodeVisitor):
    """Walks a module keeping track of the scope each node is in; `refers_to_builtin` answers for a name."""

    def __init__(self, tree: ast.Module, table: symtable.SymbolTable):
        self.deleted = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Del)}
        self.scopes = [_Scope("module", table, self._sure_bindings(tree.body))]
        self._children: dict[int, dict[tuple[str, int], list[symtable.SymbolTable]]] = {}  # by parent table id

    def refers_to_builtin(self, name: str, line: int) -> bool:
        directly_in_body = True  # a class namespace is seen only by code written directly in the class body
        for scope in reversed(self.scopes):
            if scope.kind == "comprehension":
                if name in scope.own_locals:
                    return False
                directly_in_body = False
                continue
            symbol = _lookup(scope.table, name)
            if scope.kind == "function":
                if symbol is not None and (symbol.is_local() or symbol.is_free()):
                    return False
                break
            if scope.kind == "class":
                if not directly_in_body:
                    continue
                if symbol is not None and symbol.is_free():
                    return False
                if scope.bound_at.get(name, line) < line:
                    return False
            break
        return not self.scopes[0].bound_at.get(name, line) < line

    # scopes ------------------------------------------------------------------------------------------------
    @contextmanager
    def _inside(self, scope: _Scope):
        self.scopes.append(scope)
        try:
            yield
        finally:
            self.scopes.pop()

    def _sure_bindings(self, body: list[ast.stmt]) -> dict[str, int]:
        bound: dict[str, int] = {}
        for stmt in body:
            for name in _names_bound_by(stmt):
                if name not in self.deleted:
                    bound.setdefault(name, stmt.end_lineno or stmt.lineno)
        return bound

    def _claim_table(self, name: str, line: int) -> symtable.SymbolTable | None:
        """The symtable of the function or class `name` defined on `line` in the current scope. symtable gives no
        column: when two share a name and a line (two lambdas), neither gets one and both are read strictly."""
        parent = next(s.table for s in reversed(self.scopes) if s.table is not None)
        if parent.get_id() not in self._children:
            self._children[parent.get_id()] = _children_by_place(parent)
        tables = self._children[parent.get_id()].get((name, line), [])
        return tables[0] if len(tables) == 1 else None

    def _enter_function(self, node: ast.AST, name: str, body: list[ast.AST]) -> None:
        table = self._claim_table(name, node.lineno)
        # Without a table (never seen) every name in it resolves as a global: the strict reading.
        with self._inside(_Scope("function", table)):
            for child in body:
                self.visit(child)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for child in (*node.decorator_list, *_defaults(node.args), *_annotations(node),
                      *getattr(node, "type_params", ())):
            self.visit(child)
        self._enter_function(node, node.name, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for child in _defaults(node.args):
            self.visit(child)
        self._enter_function(node, "lambda", [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for child in (*node.decorator_list, *node.bases, *node.keywords, *getattr(node, "type_params", ())):
            self.visit(child)
        scope = _Scope("class", self._claim_table(node.name, node.lineno), self._sure_bindings(node.body))
        if scope.table is None:
            scope = _Scope("function")  # unknown: resolve every name as a global
        with self._inside(scope):
            for stmt in node.body:
                self.visit(stmt)

    def _visit_comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> None:
        first, *rest = node.generators
        self.visit(first.iter)  # evaluated in the enclosing scope
        loop_variables = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        with self._inside(_Scope("comprehension", own_locals=loop_variables)):
            self.visit(first.target)
            for condition in first.ifs:
                self.visit(condition)
            for generator in rest:
                self.visit(generator)
            for part in (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,):
                self.visit(part)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension


def _children_by_place(table: symtable.SymbolTable) -> dict[tuple[str, int], list[symtable.SymbolTable]]:
    """Function and class tables defined directly in `table`, by (name, line); comprehension, type-parameter and
    annotation tables are looked through (their functions belong to the same scope in the syntax tree)."""
    found: dict[tuple[str, int], list[symtable.SymbolTable]] = {}
    pending = list(table.get_children())
    while pending:
        child = pending.pop()
        if child.get_type() in ("function", "class") and child.get_name() not in _COMPREHENSION_TABLES:
            found.setdefault((child.get_name(), child.get_lineno()), []).append(child)
        else:
            pending.extend(child.get_children())
    return found


def _lookup(table: symtable.SymbolTable | None, name: str) -> symtable.Symbol | None:
    if table is None:
        return None
    try:
        return table.lookup(name)
    except KeyError:
        return None


def _defaults(args: ast.arguments) -> list[ast.expr]:
    return [*args.defaults, *(d for d in args.kw_defaults if d is not None)]


def _annotations(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
    args = node.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, *(a for a in (args.vararg, args.kwarg) if a)]
    return [a.annotation for a in every if a.annotation is not None] + ([node.returns] if node.returns else [])


def _names_bound_by(stmt: ast.stmt) -> list[str]:
    """Names a statement binds whenever it completes (a loop, `with` or `try` might not run its body)."""
    if isinstance(stmt, ast.Assign):
        return [name for target in stmt.targets for name in _target_names(target)]
    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None and isinstance(stmt.target, ast.Name):
        return [stmt.target.id]
    if isinstance(stmt, ast.Import):
        return [alias.asname or alias.name.split(".")[0] for alias in stmt.names]
    if isinstance(stmt, ast.ImportFrom):
        return [alias.asname or alias.name for alias in stmt.names if alias.name != "*"]
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    return []


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []
