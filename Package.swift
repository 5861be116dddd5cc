// swift-tools-version: 6.0
// Layers, top to bottom (each target may import only the ones below it):
//   SandboxMount (CLI) → FuseBridge → FilesystemCore → DataLayer → Backend ← EnvdBackend,
//   VercelBackend, LangSmithBackend, CoreWeaveBackend (gRPC: CoreWeaveProtocol)
//   Backend: RemoteFilesystem plus RemoteCapabilities (what a backend does natively; the core
//   emulates the rest). Each vendor backend (EnvdBackend today) shares:
//     ExecLayer → Backend (POSIX over any command API: ProcessExecutor, ExecFilesystem)
//     HTTPTransport (libcurl, knows no vendor)
//   SandboxMount picks the backend by the URL's scheme (BackendRegistry: one entry per backend).
//   A new vendor: one target, one registry entry, one conformance-suite subclass.
//   SandboxAgent (CLI) → AgentCore
// C libraries are reached only through the system-library targets CFuse, CCurl, CZlib, CXattr,
// CPty and CArchive.
import PackageDescription

let package = Package(
  name: "sandbox-mount",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "sandbox-mount", targets: ["SandboxMount"]),
    .executable(name: "sandbox-agent", targets: ["SandboxAgent"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
    // WebSocket upgrades for LangSmith's `/execute/ws`, and NIO's connect errors from it.
    .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.65.0"),
    // Streaming multipart/form-data parser for the agent's uploads.
    .package(url: "https://github.com/vapor/multipart-kit", from: "4.7.1"),
    // SHA-256 for envd's signed `/files` URLs.
    .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
    // gRPC for CoreWeave's `coreweave.sandbox.v1.SandboxService` (h2c and TLS over NIO).
    .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    // The agent's HTTPS (`--tls-cert`), through Hummingbird's TLS channel.
    .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.27.0"),
  ],
  targets: [
    // System libraries, with static inline shims for variadic functions and macros.
    .systemLibrary(
      name: "CFuse", path: "Sources/CFuse", pkgConfig: "fuse3",
      providers: [.apt(["libfuse3-dev"])]),
    .systemLibrary(
      name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
      providers: [.apt(["libcurl4-openssl-dev"])]),
    .systemLibrary(
      name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
      providers: [.apt(["zlib1g-dev"])]),
    // glibc's extended-attribute calls (sys/xattr.h).
    .systemLibrary(name: "CXattr", path: "Sources/CXattr"),
    // Pseudo-terminals: openpty, a controlling-tty fork, TIOCSWINSZ (libutil on older glibc).
    .systemLibrary(name: "CPty", path: "Sources/CPty"),
    // libarchive: the gzip'ed tar bodies of Vercel's `fs/write`.
    .systemLibrary(
      name: "CArchive", path: "Sources/CArchive", pkgConfig: "libarchive",
      providers: [.apt(["libarchive-dev"])]),

    // Process-wide malloc settings both daemons apply at start (large buffers reused, not re-faulted).
    .target(name: "MemoryTuning"),

    // Backend protocol: the POSIX-shaped seam between the filesystem and any sandbox API.
    .target(name: "Backend"),
    // HTTP transport: one libcurl multi loop thread (also a task executor) and its transfers.
    // Knows no vendor: backends add their own headers, routes and error mapping.
    .target(name: "HTTPTransport", dependencies: ["Backend", "CCurl"]),
    // Exec layer: POSIX operations built on any sandbox's command API (`ProcessExecutor`), as
    // one constant shell script with group commit. Knows no vendor.
    .target(name: "ExecLayer", dependencies: ["Backend", "CArchive", "CZlib"]),
    // envd backend: Connect JSON, gzip, envd's routes and errors over HTTPTransport.
    .target(
      name: "EnvdBackend",
      dependencies: [
        "Backend", "ExecLayer", "HTTPTransport", "CCurl", "CZlib",
        .product(name: "Logging", package: "swift-log"),
      ]),
    // Vercel Sandbox backend: whole-file `fs/read` and tar `fs/write`, the rest through the
    // exec layer over Vercel's `cmd`.
    .target(
      name: "VercelBackend",
      dependencies: [
        "Backend", "ExecLayer", "HTTPTransport", "CCurl", "CArchive", "CZlib",
        .product(name: "Logging", package: "swift-log"),
      ]),
    // LangSmith sandbox backend: ranged `/download` and multipart `/upload`, the rest through
    // the exec layer over the command WebSocket (or SSE).
    .target(
      name: "LangSmithBackend",
      dependencies: [
        "Backend", "ExecLayer", "HTTPTransport", "CCurl",
        .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ]),
    // CoreWeave's sandbox API: messages and gRPC stubs (client and server) generated once from
    // the `.proto` subset in Proto/ by Scripts/generate-coreweave-proto, and committed.
    .target(
      name: "CoreWeaveProtocol",
      dependencies: [
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      exclude: ["Proto"]),
    // CoreWeave sandbox backend: whole-file `ReadFile`/`WriteFile` up to the cap, ranges and
    // larger files through `StreamExec` (`dd`, `cat`), the rest through the exec layer.
    .target(
      name: "CoreWeaveBackend",
      dependencies: [
        "Backend", "ExecLayer", "CoreWeaveProtocol",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]),
    // Data layer: staging files for writes, checked ranged reads.
    .target(
      name: "DataLayer",
      dependencies: ["Backend", "CZlib", .product(name: "Logging", package: "swift-log")]),
    // Filesystem core: inodes, handles, attribute and directory caches.
    .target(
      name: "FilesystemCore",
      dependencies: ["Backend", "DataLayer", .product(name: "Logging", package: "swift-log")]),
    // FUSE bridge: libfuse3 low-level callbacks to Swift, asynchronous replies.
    .target(
      name: "FuseBridge",
      dependencies: [
        "CFuse", "Backend", "DataLayer", "FilesystemCore",
        .product(name: "Logging", package: "swift-log"),
      ]),
    .executableTarget(
      name: "SandboxMount",
      dependencies: [
        "FuseBridge", "FilesystemCore", "DataLayer", "EnvdBackend", "VercelBackend", "LangSmithBackend",
        "CoreWeaveBackend", "Backend", "MemoryTuning",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ]),

    // The agent: envd's wire protocol (or Vercel Sandbox's or LangSmith's, `--protocol`) over a
    // local folder.
    .target(
      name: "AgentCore",
      dependencies: [
        "CZlib", "CXattr", "CPty", "CArchive", "CoreWeaveProtocol",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HummingbirdCore", package: "hummingbird"),
        .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
        .product(name: "HummingbirdTLS", package: "hummingbird"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "MultipartKit", package: "multipart-kit"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]),
    .executableTarget(
      name: "SandboxAgent",
      dependencies: [
        "AgentCore", "MemoryTuning",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ]),

    // Tests run the real binaries (an agent on loopback, mounts through /dev/fuse), or drive the
    // core below FUSE over TestSupport's in-memory reference backend.
    .target(name: "TestSupport", dependencies: ["Backend"], path: "Tests/TestSupport"),
    .testTarget(
      name: "AgentTests", dependencies: ["TestSupport", "SandboxAgent", "AgentCore", "CXattr"]),
    .testTarget(
      name: "EnvdBackendTests",
      dependencies: [
        "TestSupport", "SandboxAgent", "EnvdBackend", "ExecLayer", "HTTPTransport", "Backend",
      ]),
    .testTarget(
      name: "DataLayerTests", dependencies: ["DataLayer", "Backend", "TestSupport"]),
    // One suite every backend runs: the in-memory reference, the agent in both modes, and a
    // sandbox that only runs commands (the exec layer alone).
    .testTarget(
      name: "BackendConformanceTests",
      dependencies: [
        "TestSupport", "SandboxAgent", "EnvdBackend", "VercelBackend", "LangSmithBackend",
        "CoreWeaveBackend", "ExecLayer", "Backend",
      ]),
    .testTarget(
      name: "VercelBackendTests",
      dependencies: ["TestSupport", "SandboxAgent", "VercelBackend", "ExecLayer", "Backend"]),
    .testTarget(
      name: "LangSmithBackendTests",
      dependencies: ["TestSupport", "SandboxAgent", "LangSmithBackend", "ExecLayer", "Backend"]),
    // The filesystem core against the in-memory backend: no agent, no FUSE.
    .testTarget(
      name: "FilesystemCoreTests",
      dependencies: [
        "TestSupport", "FilesystemCore", "DataLayer", "Backend",
        .product(name: "Logging", package: "swift-log"),
      ]),
    .testTarget(
      name: "MountTests",
      dependencies: [
        "TestSupport", "SandboxAgent", "SandboxMount", "FilesystemCore", "DataLayer", "Backend",
      ]),
  ],
  swiftLanguageModes: [.v6]
)
