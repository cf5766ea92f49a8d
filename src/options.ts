/**
 * Up-front validation of numeric options, shared by the hub, the brokers and the server, with
 * messages that name the option: "Expected `heartbeatMs` to be a positive integer, got `-1` (number)".
 */

/** Returns `value` when it is a positive safe integer, else throws a RangeError naming `name`. */
export function positiveInteger(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Expected \`${name}\` to be a positive integer, got \`${String(value)}\` (${typeof value})`,
    )
  }
  return value
}

/** Like {@link positiveInteger}, with `null` meaning "off" when `nullable`. */
export function positiveIntegerOption(
  name: string,
  value: number | null,
  nullable: boolean,
): number | null {
  if (value === null && nullable) return null
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Expected \`${name}\` to be a positive integer${nullable ? ' or null' : ''}, got \`${String(value)}\` (${typeof value})`,
    )
  }
  return value
}
