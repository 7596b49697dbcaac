// Request bodies for POST /api/images/{id}/proposals from the prompts on a slice, and
// the check that an engine gets a prompt it needs (pure functions).

/**
 * The request for `engine` from a prompt set, with only the prompt kinds it takes.
 * @param {object} engine  from GET /api/engines (name, prompts, volumetric)
 * @param {object} prompts  {axis, index, box, positive, negative, strokes, radius}
 * @param {object} opts  label (mask label name), params ({name: value}), wholeVolume
 * @returns {object}  the body, `previous` null (the caller decides)
 */
export function requestBody(engine, prompts, { label, params = {}, wholeVolume = false }) {
  const accepts = new Set(engine.prompts);
  const p = prompts;
  const points = (kind) => p.strokes.filter((s) => s.kind === kind).flatMap((s) => s.points);
  return {
    engine: engine.name,
    label,
    axis: p.axis,
    index: engine.volumetric && wholeVolume ? null : p.index,
    box: accepts.has("box") ? p.box : null,
    positive: accepts.has("positive") ? p.positive : [],
    negative: accepts.has("negative") ? p.negative : [],
    foreground: accepts.has("foreground") ? points("foreground") : [],
    background: accepts.has("background") ? points("background") : [],
    scribble_radius: p.radius,
    previous: null,
    params: { ...params },
  };
}

/** Null if the body carries one of the prompts the engine requires, else those kinds. */
export function missingPrompts(engine, body) {
  const given = {
    box: Boolean(body.box),
    positive: body.positive.length > 0,
    negative: body.negative.length > 0,
    foreground: body.foreground.length > 0,
    background: body.background.length > 0,
    previous: Boolean(body.previous),
    none: true,
  };
  const required = engine.required || [];
  return !required.length || required.some((k) => given[k]) ? null : required;
}
