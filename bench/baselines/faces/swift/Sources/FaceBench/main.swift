// One-row inserts and point reads through erth-sync's Swift face, on the
// file erth-bench's own Rust measurement used (its `faces` section).
//
//     FaceBench --db FILE --n N [--root DIR]
//
// `ErthDb.addTodo` and `ErthDb.getTodo` (async) awaited one after the
// other, each timed alone with `DispatchTime`, after 20 calls of each that
// are not kept. It runs in a chroot: `--root` is the chroot's directory,
// taken off the front of FILE (erth-bench names it from outside). Prints
// one JSON object: samples in ms.
import ErthSync
import Foundation

let warm = 20

func arg(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

func ms(since start: UInt64) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
}

guard var path = arg("--db"), let n = arg("--n").flatMap(Int.init) else {
    FileHandle.standardError.write("usage: FaceBench --db FILE --n N [--root DIR]\n".data(using: .utf8)!)
    exit(2)
}
if let root = arg("--root"), path.hasPrefix(root) {
    path = String(path.dropFirst(root.count))
}

var insert: [Double] = []
var read: [Double] = []
let db = try await ErthDb.open(config: ErthConfig(path: path))
var ids: [String] = []
for i in 0..<(warm + n) {
    let t = DispatchTime.now().uptimeNanoseconds
    let todo = try await db.addTodo(title: "swift \(i)")
    if i >= warm { insert.append(ms(since: t)) }
    ids.append(todo.id)
}
for i in 0..<(warm + n) {
    let t = DispatchTime.now().uptimeNanoseconds
    let todo = try await db.getTodo(id: ids[i])
    if i >= warm { read.append(ms(since: t)) }
    if todo.id != ids[i] {
        FileHandle.standardError.write("read \(todo.id), not \(ids[i])\n".data(using: .utf8)!)
        exit(1)
    }
}
#if swift(>=6.2)
let version = "Swift 6.2 or later"
#elseif swift(>=6.1)
let version = "Swift 6.1"
#elseif swift(>=6.0)
let version = "Swift 6.0"
#else
let version = "Swift 5"
#endif
let out: [String: Any] = ["insert": insert, "read": read, "version": version]
let json = try JSONSerialization.data(withJSONObject: out)
print(String(data: json, encoding: .utf8)!)
