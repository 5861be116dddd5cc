import Backend

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

/// Metadata operations for a stock envd, run as one `/bin/sh -c SCRIPT` process.
///
/// The script is a constant: a small interpreter of its positional arguments, so no shell text
/// is ever built from paths (protocol doc §7 passes argv verbatim). Arguments are jobs:
/// `ID PATH STEP… end`, each step a keyword with a fixed number of arguments. Paths are
/// protocol paths, taken relative to `$SANDBOX_ROOT` (set by sandbox-agent, whose processes run
/// on the host; absent on a real envd: `/`), the script's working folder. A job stops at its
/// first failing step. An exclusive create is `dd conv=excl` (O_CREAT|O_EXCL with exact errors; dash's noclobber
/// reports ENOTDIR as "Directory nonexistent").
///
/// Output records on stdout: `\u{1}` + kind + job id, a newline, then the payload up to the next
/// record: `F` the failing step's stderr (`LC_ALL=C`, classified to an errno), `S` a `stat -c`
/// line, `L` readlink's exact text, `V` a `stat -f` line, `E` a folder entry's stat line and name.
public enum ExecScript {
  public static let text = #"""
    R=${SANDBOX_ROOT:-} ME=
    # Paths are relative to the root, the working folder: a 4095-byte protocol path stays within
    # PATH_MAX, which the root's prefix would overflow. `./` keeps a name from reading as an
    # option where there is room for it.
    cd -- "${R:-/}" || exit 1
    # (Results in variables: a command substitution would drop a name's trailing newlines.)
    rel() { r=${1#/}; if [ ${#r} -lt 4000 ]; then r=./$r; fi; [ -n "$r" ] || r=.; }
    dir() { case $1 in */*) d=${1%/*} ;; *) d=. ;; esac; }
    S=$(printf '\001')
    fail() { ok=0; printf '%sF%s\n%s\n' "$S" "$id" "$1"; }
    # A job's commands run as its caller ($W, set by `as`); `own_run` as envd's user.
    run() { [ "$ok" = 1 ] || return 0; e=$($W "$@" 2>&1) || fail "$e"; }
    own_run() { [ "$ok" = 1 ] || return 0; e=$("$@" 2>&1) || fail "$e"; }
    # A mode from a caller who may write the file but does not own it, that only clears
    # setuid/setgid: the kernel's own change after a write by another user, which that caller
    # may not make as a chmod.
    drops_privileges() {
      o=$(stat -c '%u %a' -- "$p" 2>/dev/null) || return 1
      [ "${o%% *}" != "$CU" ] && $W test -w "$p" || return 1
      old=$((0${o#* })) new=$((0$1))
      [ "$new" -ne "$old" ] && [ $((old & ~06000)) -eq $((new & ~06000)) ] && [ $((new & ~old)) -eq 0 ]
    }
    while [ $# -gt 1 ]; do
      rel "$2"
      id=$1 p=$r ok=1 W= CU= CG=
      shift 2
      while [ $# -gt 0 ] && [ "$1" != end ]; do
        op=$1
        shift
        case $op in
        as)
          # The caller's uid, gid and groups. Only root may become another user: otherwise, or
          # without setpriv, envd's user acts (as envd does).
          [ -n "$ME" ] || ME=$(id -u)
          if [ "$ME" = 0 ] && command -v setpriv >/dev/null 2>&1; then
            if [ -n "$3" ]; then W="setpriv --reuid=$1 --regid=$2 --groups=$3 --"
            else W="setpriv --reuid=$1 --regid=$2 --clear-groups --"; fi
            CU=$1 CG=$2
          fi
          shift 3 ;;
        size)
          if [ "$ok" != 1 ]; then :
          elif [ -d "$p" ]; then fail 'Is a directory'
          elif [ -L "$p" ] || { [ -e "$p" ] && [ ! -f "$p" ]; }; then fail 'Invalid argument'
          else run truncate -c -s "$1" -- "$p"; fi
          shift ;;
        own) run chown -h -- "$1" "$p"; shift ;;
        mode)
          if [ "$ok" = 1 ] && [ -L "$p" ]; then fail 'Operation not supported'
          elif [ "$ok" = 1 ] && [ -n "$W" ] && drops_privileges "$1"; then own_run chmod -- "$1" "$p"
          else run chmod -- "$1" "$p"; fi
          shift ;;
        atime|mtime|times)
          case $op in atime) w=-a ;; mtime) w=-m ;; *) w=-h ;; esac
          if [ -n "$1" ]; then run touch -h -c $w -d "$1" -- "$p"
          else run touch -h -c $w -- "$p"; fi
          shift ;;
        create)
          if [ "$ok" != 1 ]; then :
          elif [ "$2" = 0 ] && { [ -e "$p" ] || [ -L "$p" ]; }; then
            if [ -L "$p" ]; then fail 'Too many levels of symbolic links'
            elif [ -d "$p" ]; then fail 'Is a directory'; fi
          else
            run dd if=/dev/null of="$p" conv=excl status=none
            run chmod -- "$1" "$p"
          fi
          shift 2 ;;
        mkdir)
          # `mkdir -m` chmods a mode with special bits, dropping the setgid a directory inherits
          # from a setgid parent (Linux's rule, which the kernel applies before FUSE sees the mode).
          run mkdir -m "$1" -- "$p"
          dir "$p"
          if [ "$ok" = 1 ] && [ -g "$d" ]; then run chmod g+s -- "$p"; fi
          shift ;;
        patch)
          # Bytes at an offset of an existing file, in place; base64 keeps them argv-safe.
          if [ "$ok" = 1 ]; then
            e=$(printf '%s' "$2" | base64 -d | dd of="$p" bs=65536 seek="$1" oflag=seek_bytes conv=notrunc,nocreat status=none 2>&1) || fail "$e"
          fi
          shift 2 ;;
        replace)
          # A complete upload at TEMP (SIZE bytes) becomes the file: renamed over it with its
          # mode, or copied into it when it has other hard links (so they keep sharing it). The
          # directory's mtime goes back to DIRTIME: writing a file leaves its directory alone.
          if [ "$ok" = 1 ]; then
            rel "$1"; s=$r
            if [ "$(stat -c %s -- "$s" 2>/dev/null)" != "$2" ]; then
              rm -f -- "$s"; fail "Input/output error: the upload is not $2 bytes"
            elif [ -f "$p" ] && [ ! -L "$p" ] && [ "$(stat -c %h -- "$p")" -gt 1 ]; then
              own_run dd if="$s" of="$p" bs=1M status=none
              rm -f -- "$s"
            else
              # The upload is envd's user's: it takes the target's owner (before its mode: a
              # chown clears setuid), or a new file's caller's (the folder's group if setgid).
              if [ -f "$p" ] && [ ! -L "$p" ]; then
                own_run chown --reference="$p" -- "$s"
                own_run chmod -- "$(stat -c %a -- "$p")" "$s"
              elif [ -n "$CU" ] && [ ! -e "$p" ]; then
                dir "$p"
                if [ -g "$d" ]; then own_run chown "$CU:$(stat -c %g -- "$d")" -- "$s"
                else own_run chown "$CU:$CG" -- "$s"; fi
              fi
              own_run mv -f -T -- "$s" "$p"
              [ "$ok" = 1 ] || rm -f -- "$s"
            fi
            if [ "$ok" = 1 ] && [ -n "$3" ]; then dir "$p"; touch -c -m -d "$3" -- "$d/" 2>/dev/null || :; fi
          fi
          shift 3 ;;
        expect)
          # The file must still be the version this mount last saw (SIZE MTIME), else the
          # upload at TEMP is dropped: someone else's change is not overwritten.
          if [ "$ok" = 1 ] && [ -f "$p" ] && [ "$(stat -c '%s %.9Y' -- "$p")" != "$1 $2" ]; then
            rel "$3"; rm -f -- "$r"; fail 'Stale file handle'
          fi
          shift 3 ;;
        unlink)
          if [ "$ok" = 1 ] && [ -d "$p" ] && [ ! -L "$p" ]; then fail 'Is a directory'
          else run unlink -- "$p"; fi ;;
        rmdir) run rmdir -- "$p" ;;
        discard) run rm -f -- "$p" ;;
        mkfifo) run mkfifo -m "$1" -- "$p"; shift ;;
        mknod) run mknod -m "$4" -- "$p" "$1" "$2" "$3"; shift 4 ;;
        socket)
          # A bound unix socket, made by whatever can bind one (no coreutils tool can).
          if [ "$ok" != 1 ]; then :
          elif [ -e "$p" ] || [ -L "$p" ]; then fail 'File exists'
          elif command -v perl >/dev/null 2>&1; then
            run perl -MSocket -e 'my ($d, $n) = $ARGV[0] =~ m{^(.*/)?([^/]*)$}; chdir($d) or die "$!\n" if defined $d; socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "$!\n"; bind($s, pack_sockaddr_un($n)) or die "$!\n"' "$p"
            run chmod -- "$1" "$p"
          elif command -v python3 >/dev/null 2>&1; then
            run python3 -c 'import os, socket, sys
    d, n = os.path.split(sys.argv[1])
    try:
        os.chdir(d or "/"); socket.socket(socket.AF_UNIX).bind(n)
    except OSError as e:
        sys.exit(e.strerror)' "$p"
            run chmod -- "$1" "$p"
          else fail 'Operation not supported: no perl or python3 to bind a socket'; fi
          shift ;;
        rename)
          # rename(2) itself where perl is, for its exact errors; else mv.
          rel "$1"
          if [ "$ok" = 1 ] && command -v perl >/dev/null 2>&1; then
            run perl -e 'rename($ARGV[0], $ARGV[1]) or die "$!\n"' "$p" "$r"
          else run mv -f -T -- "$p" "$r"; fi
          shift ;;
        symlink) run ln -s -T -- "$1" "$p"; shift ;;
        link) rel "$1"; run ln -P -T -- "$r" "$p"; shift ;;
        fsync)
          # As envd's user: fsync(2) checks no permission, where sync(1) must open the file.
          if [ "$1" = 1 ]; then own_run sync -d -- "$p"; else own_run sync -- "$p"; fi
          shift ;;
        readlink)
          if [ "$ok" = 1 ]; then
            e=$(readlink -v -n -- "$p" 2>&1 && printf '%s' "$S")
            case $e in
            *"$S") printf '%sL%s\n%s\n' "$S" "$id" "${e%"$S"}" ;;
            *) fail "$e" ;;
            esac
          fi ;;
        stat)
          if [ "$ok" = 1 ]; then
            if e=$(stat -c '%f %h %u %g %s %b %i %.9X %.9Y %.9Z %t %T' -- "$p" 2>&1); then printf '%sS%s\n%s\n' "$S" "$id" "$e"
            else fail "$e"; fi
          fi ;;
        list)
          # One `E` record per entry: its stat line, a space, its path (the name after the last
          # slash; names may hold spaces and newlines, not \001). Hidden names too; an unreadable
          # folder lists empty. One stat for all entries (xargs keeps argv within its limit): a
          # process per entry made listings the slowest call on a command-only sandbox.
          if [ "$ok" = 1 ]; then
            if ! e=$(stat -c %F -- "$p/" 2>&1); then fail "$e"
            else
              for e in "$p"/* "$p"/.[!.]* "$p"/..?*; do
                [ -e "$e" ] || [ -L "$e" ] || continue
                printf '%s\0' "$e"
              done | xargs -0 -r stat --printf "${S}E$id\\n%f %h %u %g %s %b %i %.9X %.9Y %.9Z %t %T %n\\n" -- 2>/dev/null
            fi
          fi ;;
        statfs)
          if [ "$ok" = 1 ]; then
            if e=$(stat -f -c '%S %b %f %a %c %d %l' -- "$p" 2>&1); then
              printf '%sV%s\n%s\n' "$S" "$id" "$e"
            else fail "$e"; fi
          fi ;;
        *) fail "Invalid argument: unknown step $op"; exit 0 ;;
        esac
      done
      shift
    done
    """#

  /// One job's steps, as script arguments after its id and path.
  public enum Step: Sendable {
    case size(UInt64)
    case owner(uid: UInt32?, gid: UInt32?)
    case mode(UInt32)
    case accessTime(RemoteTimeChange)
    case modificationTime(RemoteTimeChange)
    case bothTimes(RemoteTimeChange)
    case create(mode: UInt32, exclusive: Bool)
    case makeDirectory(mode: UInt32)
    case makeFifo(mode: UInt32)
    /// A block (`b`) or character (`c`) device.
    case makeDevice(kind: Character, major: UInt32, minor: UInt32, mode: UInt32)
    case makeSocket(mode: UInt32)
    /// rename(2) of the job's path to this protocol path.
    case rename(to: String)
    /// First in a job: its commands run as this caller (`setpriv`), so the kernel checks.
    case actAs(CallerIdentity)
    case symlink(target: String)
    /// A hard link at the job's path to this protocol path.
    case link(from: String)
    case fsync(dataOnly: Bool)
    /// Writes `bytes` at `offset` of the existing file, in place.
    case patch(offset: UInt64, bytes: [UInt8])
    /// The uploaded file at this protocol path, of `size` bytes, replaces the job's path; its
    /// directory's mtime is then set back to `directoryTime`.
    case replace(from: String, size: UInt64, directoryTime: RemoteTime?)
    /// The job's file must still be `version` (when it exists), else ESTALE and the upload at
    /// `upload` is dropped.
    case expect(RemoteFileVersion, upload: String)
    /// unlink(2): EISDIR for a directory.
    case unlink
    case removeDirectory
    /// Removes the job's path if it is there.
    case discard
    case readLink
    case stat
    /// Every entry of the folder with its stat (`ExecResult.entries`).
    case list
    case statfs

    var arguments: [String] {
      switch self {
      case .size(let size): ["size", String(size)]
      case .owner(let uid, let gid):
        ["own", (uid.map(String.init) ?? "") + (gid.map { ":\($0)" } ?? "")]
      case .mode(let mode): ["mode", ExecScript.octal(mode)]
      case .accessTime(let time): ["atime", ExecScript.touchDate(time)]
      case .modificationTime(let time): ["mtime", ExecScript.touchDate(time)]
      case .bothTimes(let time): ["times", ExecScript.touchDate(time)]
      case .create(let mode, let exclusive):
        ["create", ExecScript.octal(mode), exclusive ? "1" : "0"]
      case .makeDirectory(let mode): ["mkdir", ExecScript.octal(mode)]
      case .makeFifo(let mode): ["mkfifo", ExecScript.octal(mode)]
      case .makeDevice(let kind, let major, let minor, let mode):
        ["mknod", String(kind), String(major), String(minor), ExecScript.octal(mode)]
      case .makeSocket(let mode): ["socket", ExecScript.octal(mode)]
      case .rename(let destination): ["rename", destination]
      case .actAs(let caller):
        [
          "as", String(caller.uid), String(caller.gid),
          caller.groups.map(String.init).joined(separator: ","),
        ]
      case .symlink(let target): ["symlink", target]
      case .link(let source): ["link", source]
      case .fsync(let dataOnly): ["fsync", dataOnly ? "1" : "0"]
      case .patch(let offset, let bytes):
        ["patch", String(offset), Data(bytes).base64EncodedString()]
      case .replace(let source, let size, let time):
        ["replace", source, String(size), time.map { ExecScript.touchDate(.set($0)) } ?? ""]
      case .expect(let version, let upload):
        ["expect", String(version.size), ExecScript.statTime(version.modificationTime), upload]
      case .unlink: ["unlink"]
      case .removeDirectory: ["rmdir"]
      case .discard: ["discard"]
      case .readLink: ["readlink"]
      case .stat: ["stat"]
      case .list: ["list"]
      case .statfs: ["statfs"]
      }
    }
  }

  /// The steps of a setattr in the order the extension applies them (size, owner, mode, times),
  /// then a stat for the answer.
  public static func steps(for changes: RemoteAttributeChanges) -> [Step] {
    var steps: [Step] = []
    if let size = changes.size { steps.append(.size(size)) }
    if changes.uid != nil || changes.gid != nil {
      steps.append(.owner(uid: changes.uid, gid: changes.gid))
    }
    if let mode = changes.mode { steps.append(.mode(mode)) }
    switch (changes.accessTime, changes.modificationTime) {
    case (let access?, let modification?) where access == modification:
      steps.append(.bothTimes(access))
    case (let access, let modification):
      if let access { steps.append(.accessTime(access)) }
      if let modification { steps.append(.modificationTime(modification)) }
    }
    steps.append(.stat)
    return steps
  }

  /// The first step of a job made for `CallerIdentity.current`: none for root or no caller
  /// (envd's user then acts, as envd does).
  public static func asCaller() -> [Step] {
    guard let caller = CallerIdentity.current, caller.uid != 0 else { return [] }
    return [.actAs(caller)]
  }

  /// Five octal digits: GNU chmod keeps a directory's setuid/setgid for shorter numeric modes.
  public static func octal(_ mode: UInt32) -> String {
    let digits = String(mode & 0o7777, radix: 8)
    return String(repeating: "0", count: max(0, 5 - digits.count)) + digits
  }

  /// `touch -d` text: empty for now, `@SECONDS.NANOSECONDS` otherwise.
  public static func touchDate(_ change: RemoteTimeChange) -> String {
    guard case .set(let time) = change else { return "" }
    return "@" + statTime(time)
  }

  /// A time as `stat -c %.9Y` prints it (the inverse of `ExecOutput.time`): -1 s + 0.25 s
  /// is `-0.750000000`.
  public static func statTime(_ time: RemoteTime) -> String {
    var seconds = time.seconds
    var nanoseconds = Int64(time.nanoseconds)
    var sign = ""
    if seconds < 0 && nanoseconds > 0 {
      seconds += 1
      nanoseconds = 1_000_000_000 - nanoseconds
      if seconds == 0 { sign = "-" }
    }
    let fraction = String(nanoseconds)
    return "\(sign)\(seconds)." + String(repeating: "0", count: max(0, 9 - fraction.count))
      + fraction
  }

  public static func arguments(for jobs: [(path: String, steps: [Step])]) -> [String] {
    var arguments = ["-c", text, "sh"]
    for (index, job) in jobs.enumerated() {
      arguments += [String(index), job.path]
      for step in job.steps { arguments += step.arguments }
      arguments.append("end")
    }
    return arguments
  }
}
