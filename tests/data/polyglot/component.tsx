import React from "react";

/** Renders a greeting. */
export function Greeting(props: { name: string }) {
  return <div>Hello {props.name}</div>;
}
