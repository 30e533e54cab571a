// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// One CodeMirror 6 editor per channel: Haskell highlighting, Ctrl/Cmd-Enter
// evaluates the block around the cursor (lines up to blank lines), which
// flashes; GHCi's errors become lint diagnostics at their line and column.

import { EditorState, StateEffect, StateField, Compartment } from '@codemirror/state';
import { EditorView, Decoration, keymap, lineNumbers, drawSelection,
         highlightActiveLine } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { StreamLanguage, syntaxHighlighting, defaultHighlightStyle,
         bracketMatching } from '@codemirror/language';
import { haskell } from '@codemirror/legacy-modes/mode/haskell';
import { setDiagnostics, lintGutter } from '@codemirror/lint';

const flashEffect = StateEffect.define();   // {from, to} or null
const flashMark = Decoration.mark({ class: 'cm-flash' });

const flashField = StateField.define({
    create: () => Decoration.none,
    update(deco, tr) {
        deco = deco.map(tr.changes);
        for (const e of tr.effects) {
            if (e.is(flashEffect)) {
                deco = e.value ? Decoration.set([flashMark.range(e.value.from, e.value.to)])
                    : Decoration.none;
            }
        }
        return deco;
    },
    provide: (f) => EditorView.decorations.from(f),
});


// The block under the cursor: the lines around it up to blank lines.
export function blockAt(doc, pos) {
    let first = doc.lineAt(pos).number;
    let last = first;
    const blank = (n) => /^\s*$/.test(doc.line(n).text);

    if (blank(first)) {
        return null;
    }
    while (first > 1 && !blank(first - 1)) {
        first--;
    }
    while (last < doc.lines && !blank(last + 1)) {
        last++;
    }
    const from = doc.line(first).from;
    const to = doc.line(last).to;
    return { from, to, text: doc.sliceString(from, to), firstLine: first };
}


// GHCi's positions in an error text, relative to the pattern: the first
// "L:C" (as in "<interactive>:2:7: error:" or "2:7:"), else none.
export function errorPosition(text) {
    const m = /\bd\d+:(\d+):(\d+)/.exec(text)
        || /(?:^|[\s:>])(\d+):(\d+)(?:-\d+)?:/m.exec(text)
        || /line (\d+), column (\d+)/i.exec(text);
    return m ? { line: Number(m[1]), column: Number(m[2]) } : null;
}


export class ChannelEditor {
    constructor(parent, { onEval, readOnly = false, doc = '' }) {
        this.onEval = onEval;
        this.editable = new Compartment();
        this.view = new EditorView({
            parent,
            state: EditorState.create({
                doc,
                extensions: [
                    lineNumbers(),
                    history(),
                    drawSelection(),
                    highlightActiveLine(),
                    bracketMatching(),
                    StreamLanguage.define(haskell),
                    syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
                    lintGutter(),
                    flashField,
                    this.editable.of(this.editableExt(readOnly)),
                    keymap.of([
                        { key: 'Mod-Enter', run: () => this.evalBlock(), preventDefault: true },
                        { key: 'Shift-Enter', run: () => this.evalBlock(), preventDefault: true },
                        ...defaultKeymap, ...historyKeymap,
                    ]),
                    EditorView.lineWrapping,
                ],
            }),
        });
    }

    editableExt(readOnly) {
        return [EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)];
    }

    setReadOnly(readOnly) {
        this.view.dispatch({ effects: this.editable.reconfigure(this.editableExt(readOnly)) });
    }

    get text() {
        return this.view.state.doc.toString();
    }

    // someone else's pattern: replace the text unless it is already there
    setText(text) {
        if (this.text.includes(text)) {
            return;
        }
        this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: text } });
    }

    flash(range, cls = 'cm-flash') {
        this.view.dom.classList.toggle('flash-error', cls !== 'cm-flash');
        this.view.dispatch({ effects: flashEffect.of(range) });
        clearTimeout(this.flashTimer);
        this.flashTimer = setTimeout(() => {
            this.view.dispatch({ effects: flashEffect.of(null) });
            this.view.dom.classList.remove('flash-error');
        }, 400);
    }

    evalBlock() {
        if (this.view.state.readOnly) {
            return true;
        }
        const block = blockAt(this.view.state.doc, this.view.state.selection.main.head);
        if (!block) {
            return true;
        }
        this.clearError();
        this.flash({ from: block.from, to: block.to });
        this.onEval(block, this);
        return true;
    }

    // an error of the pattern of block, at GHCi's line and column
    showError(block, message) {
        const doc = this.view.state.doc;
        const pos = errorPosition(message);
        let from = block.from;
        let to = block.to;

        if (pos) {
            const n = Math.min(block.firstLine + pos.line - 1, doc.lines);
            const line = doc.line(Math.max(n, 1));
            from = Math.min(line.from + Math.max(pos.column - 1, 0), line.to);
            to = Math.min(from + 1, line.to);
            if (to === from && from > line.from) {
                from--;
            }
        }
        this.view.dispatch(setDiagnostics(this.view.state, [
            { from, to, severity: 'error', message, source: 'GHCi' },
        ]));
        this.flash({ from: block.from, to: block.to }, 'cm-flash-error');
        this.hasError = true;
        return pos;
    }

    clearError() {
        if (this.hasError) {
            this.view.dispatch(setDiagnostics(this.view.state, []));
            this.hasError = false;
        }
    }
}
