import CFuse
import FilesystemCore
