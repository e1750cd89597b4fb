/**
 * Minimal types for dcmjs 0.51 (the package ships none). Only the surface this project uses is
 * declared; extend it here (one place) when another part of the code needs more.
 */
declare module 'dcmjs' {
  /** One element of a dcmjs "denaturalized" dataset, keyed by 8-hex-digit tag ("7FE00010"). */
  export interface DicomElement {
    vr: string;
    /** Values; PixelData holds one ArrayBuffer per frame (or fragment, for encapsulated data). */
    Value?: unknown[];
    /** Set by dcmjs for binary elements it reads. */
    InlineBinary?: string;
  }

  export type DicomDataset = Record<string, DicomElement>;

  export interface ReadFileOptions {
    ignoreErrors?: boolean;
    /** Stop at this tag ("7FE00010"); with includeUntilTagValue false its value is not read. */
    untilTag?: string | null;
    includeUntilTagValue?: boolean;
    noCopy?: boolean;
    forceStoreRaw?: boolean;
  }

  export interface WriteOptions {
    allowInvalidVRLength?: boolean;
    fragmentMultiframe?: boolean;
  }

  export class DicomDict {
    constructor(meta: DicomDataset);
    meta: DicomDataset;
    dict: DicomDataset;
    upsertTag(tag: string, vr: string, values: unknown): void;
    write(options?: WriteOptions): ArrayBuffer;
  }

  // biome-ignore lint/complexity/noStaticOnlyClass: declares dcmjs's own class, which has only static members
  export class DicomMessage {
    static readFile(buffer: ArrayBuffer, options?: ReadFileOptions): DicomDict;
    static isEncapsulated(syntax: string): boolean;
  }

  // biome-ignore lint/complexity/noStaticOnlyClass: declares dcmjs's own class, which has only static members
  export class DicomMetaDictionary {
    static naturalizeDataset(dataset: DicomDataset): Record<string, unknown>;
    static denaturalizeDataset(dataset: Record<string, unknown>): DicomDataset;
    static uid(): string;
    static date(): string;
    static time(): string;
  }

  export const data: {
    DicomMessage: typeof DicomMessage;
    DicomDict: typeof DicomDict;
    DicomMetaDictionary: typeof DicomMetaDictionary;
  };

  /** loglevel logger; dcmjs also uses named children such as "validation.dcmjs". */
  export interface DcmjsLogger {
    setLevel(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent' | number): void;
    getLevel(): number;
  }
  export const log: DcmjsLogger & { getLogger(name: string): DcmjsLogger };

  const dcmjs: {
    data: typeof data;
    log: typeof log;
  };
  export default dcmjs;
}
