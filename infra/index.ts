/**
 * The Pulumi program `pulumi up` runs in this directory (see Pulumi.yaml and the README section
 * "Environments through Pulumi"). Its exports are the stack outputs.
 */
import * as pulumi from "@pulumi/pulumi";
import { argsFromConfig } from "./config.ts";
import { environment } from "./environment.ts";

const out = environment(argsFromConfig(new pulumi.Config(), pulumi.getStack()));

export const serviceName = out.serviceName;
export const url = out.url;
export const namespace = out.namespace;
