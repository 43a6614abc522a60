// Just enough of React for react.test.js to run src/react.js without a renderer: a component
// rendered by hand, hooks kept in call order, effects run after each render when their
// dependencies change, and useSyncExternalStore rendering again when the store changes.
export const Fragment = Symbol("Fragment");
export const createElement = (type, props, ...children) => ({ type, props, children });

let rendering = null;

export function render(component, props) {
  const r = { hooks: [], effects: [], output: null, renders: 0 };
  r.draw = () => {
    rendering = r;
    r.next = 0;
    r.renders++;
    r.output = component(props);
    rendering = null;
    for (const effect of r.effects.splice(0)) effect();
  };
  r.draw();
  return r;
}

const slot = () => [rendering, rendering.next++];

export function useState(initial) {
  const [r, i] = slot();
  if (!(i in r.hooks)) r.hooks[i] = initial;
  return [r.hooks[i], (value) => { r.hooks[i] = value; r.draw(); }];
}

export function useEffect(effect, deps) {
  const [r, i] = slot();
  const before = r.hooks[i];
  if (before && deps.every((d, k) => Object.is(d, before[k]))) return;
  r.hooks[i] = deps;
  r.effects.push(effect);
}

export function useSyncExternalStore(subscribe, getSnapshot) {
  const [r, i] = slot();
  if (!(i in r.hooks)) r.hooks[i] = subscribe(() => r.draw());
  return getSnapshot();
}
