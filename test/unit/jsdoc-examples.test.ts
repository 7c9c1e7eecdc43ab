// The API documentation of src/StreamOffsets.ts, as JSR and editors show it: every export carries
// `@since` and `@category`, the main exports an `@example`, and every example (a ```ts block in an
// `@example` tag) compiles against the module as a user writes it, importing "effect-stream-offsets".
// The examples are type-checked, not run (most need a broker): one TypeScript program for all of them.
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import ts from "typescript"

const root = path.resolve(import.meta.dirname, "../..")
const modulePath = path.join(root, "src/StreamOffsets.ts")
const source = fs.readFileSync(modulePath, "utf8")

/** The categories the module's sections map to: what a reader browses by. */
const CATEGORIES = [
  "messages",
  "models",
  "super streams",
  "errors",
  "validation",
  "configuration",
  "services",
  "layers",
  "constructors",
  "send",
  "consume",
  "inspect",
  "producer",
  "metrics",
  "internal"
]

/** What users call: each has an example. */
const MAIN_EXPORTS = [
  "Amqp",
  "messageToJson",
  "messageFromJson",
  "bodyText",
  "filterValueOf",
  "StartPosition",
  "TrackingStrategy",
  "ConnectionState",
  "Routing",
  "parseUri",
  "ConnectionConfig",
  "retryFor",
  "StreamBroker",
  "MemoryBroker",
  "OffsetStore",
  "MemoryOffsetStore",
  "send",
  "sendToSuperStream",
  "consume",
  "consumeSuperStream",
  "receive",
  "receiveSuperStream",
  "inspectOffset",
  "inspectSuperStreamOffsets",
  "Producer",
  "messagesConsumed"
]

/** An example: its code, and the line of src/StreamOffsets.ts its first line of code is on. */
interface Example {
  readonly code: string
  readonly line: number
}

/** The ```ts blocks of the `@example` tags of the module's JSDoc comments. */
const examples = (text: string): ReadonlyArray<Example> => {
  const found: Array<Example> = []
  for (const comment of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const startLine = text.slice(0, comment.index).split("\n").length
    const lines = comment[0].split("\n").map((l) => l.replace(/^\s*\*\/?$/, "").replace(/^\s*\* ?/, ""))
    let inExample = false
    let block: Array<string> | undefined
    lines.forEach((line, i) => {
      if (block !== undefined) {
        if (line.trim() === "```") {
          found.push({ code: block.join("\n") + "\n", line: startLine + i - block.length })
          block = undefined
        } else block.push(line)
      } else if (/^@\w+/.test(line.trim())) inExample = line.trim().startsWith("@example")
      else if (inExample && line.trim() === "```ts") block = []
    })
  }
  return found
}

/**
 * The exported declarations of the module, each with its name and JSDoc tags (a type and a value of
 * one name are two; the implementation of an overloaded function is none: its signatures are).
 */
const exportedDeclarations = () => {
  const file = ts.createSourceFile(modulePath, source, ts.ScriptTarget.Latest, true)
  const declarations: Array<{ readonly name: string; readonly line: number; readonly tags: ReadonlyArray<ts.JSDocTag> }> = []
  for (const statement of file.statements) {
    if (!ts.canHaveModifiers(statement)) continue
    if (!ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) continue
    const overloaded = ts.isFunctionDeclaration(statement) && statement.body !== undefined &&
      file.statements.some((other) => other !== statement && ts.isFunctionDeclaration(other) && other.name?.text === statement.name?.text)
    if (overloaded) continue
    const names = ts.isVariableStatement(statement)
      ? statement.declarationList.declarations.map((d) => d.name.getText())
      : [(statement as ts.DeclarationStatement).name?.getText() ?? "?"]
    const line = file.getLineAndCharacterOfPosition(statement.getStart()).line + 1
    for (const name of names) declarations.push({ name, line, tags: ts.getJSDocTags(statement) })
  }
  return declarations
}

/** Type-checks the examples as modules of their own (one program), mapping the package to src/. */
const typeCheck = (blocks: ReadonlyArray<Example>): ReadonlyArray<string> => {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(root, "tsconfig.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    }
  })!
  const dir = path.join(root, ".jsdoc-examples")
  const files = new Map(blocks.map((b, i) => [path.join(dir, `example-${i + 1}.ts`), b]))
  const options: ts.CompilerOptions = {
    ...config.options,
    noEmit: true,
    noUnusedLocals: false,
    noUnusedParameters: false,
    paths: { "effect-stream-offsets": [modulePath] }
  }
  const host = ts.createCompilerHost(options)
  const { fileExists, getSourceFile, readFile } = host
  host.fileExists = (name) => files.has(name) || fileExists(name)
  host.readFile = (name) => files.get(name)?.code ?? readFile(name)
  host.getSourceFile = (name, language, ...rest) => {
    const example = files.get(name)
    return example === undefined
      ? getSourceFile(name, language, ...rest)
      : ts.createSourceFile(name, example.code, language)
  }
  const program = ts.createProgram([...files.keys()], options, host)
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n")
    const example = d.file === undefined ? undefined : files.get(d.file.fileName)
    if (d.file === undefined || example === undefined) return `${d.file?.fileName ?? "?"}: ${text}`
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0)
    return `src/StreamOffsets.ts:${example.line + line}: ${text}`
  })
}

describe("the API documentation of src/StreamOffsets.ts", () => {
  const blocks = examples(source)
  const declarations = exportedDeclarations()

  it("finds the exports and the examples", () => {
    expect(declarations.length).toBeGreaterThan(100)
    expect(blocks.length).toBeGreaterThanOrEqual(MAIN_EXPORTS.length)
    for (const block of blocks) expect(block.code, `line ${block.line}`).toContain(`from "effect-stream-offsets"`)
  })

  it("gives every export @since and one @category of the fixed set", () => {
    const missing: Array<string> = []
    for (const { line, name, tags } of declarations) {
      const since = tags.filter((t) => t.tagName.text === "since")
      const categories = tags.filter((t) => t.tagName.text === "category").map((t) => ts.getTextOfJSDocComment(t.comment))
      if (since.length !== 1) missing.push(`${name} (line ${line}): @since`)
      if (categories.length !== 1 || !CATEGORIES.includes(categories[0] ?? "")) {
        missing.push(`${name} (line ${line}): @category ${categories.join(", ")}`)
      }
    }
    expect(missing).toEqual([])
  })

  it("gives every main export an @example, and no internal one", () => {
    const has = (tag: string, text?: string) =>
      new Set(
        declarations.filter(({ tags }) =>
          tags.some((t) => t.tagName.text === tag && (text === undefined || ts.getTextOfJSDocComment(t.comment) === text))
        ).map(({ name }) => name)
      )
    const withExample = has("example")
    expect(MAIN_EXPORTS.filter((name) => !withExample.has(name))).toEqual([])
    const internal = has("category", "internal")
    expect([...withExample].filter((name) => internal.has(name))).toEqual([])
  })

  // One program for all the examples, and for a broken one that proves a failure is seen.
  const broken: Example = { code: `import { send } from "effect-stream-offsets"\nsend({ stream: 1 })\n`, line: -100 }
  let diagnostics: ReadonlyArray<string> | undefined
  const checked = () => (diagnostics ??= typeCheck([...blocks, broken]))

  it("has examples that compile against the module", () => {
    expect(checked().filter((d) => !d.startsWith("src/StreamOffsets.ts:-99: "))).toEqual([])
  }, 120_000)

  it("says where a broken example is", () => {
    expect(checked().filter((d) => d.startsWith("src/StreamOffsets.ts:-99: ")).length).toBeGreaterThan(0)
  }, 120_000)
})
