/** File system error codes in words ("no such file or directory"), for one-line messages. */
const FS_WORDS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'is a directory',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'file name too long',
  EMFILE: 'too many open files',
};

/** The words for a file system error's code, or undefined when it is not one. */
export function fsErrorWords(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code ? FS_WORDS[code] : undefined;
}

/** "no such file or directory", else the error's message. */
export function fsReason(err: unknown): string {
  return fsErrorWords(err) ?? (err instanceof Error ? err.message : String(err));
}
